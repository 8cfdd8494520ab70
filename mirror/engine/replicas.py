"""With DOCKER_MIRROR_REPLICAS > 1: HAProxy and Redis, the replicas' shared containers.

The registry replicas themselves are planned and run by engine.containers
like any mirror container (PREFIX-KEY-r1 ... -rN, loopback ports from
model.replicas, one http secret, a Redis database per upstream). This module
runs what they share, the way the product runs everything: containers with
host networking, restart unless-stopped, logs capped, labelled with the
.config they belong to and a hash of their config and image:

- PREFIX-redis: the blob-descriptor cache, on loopback, maxmemory with
  allkeys-lru, nothing saved, a password (mirror.host.redis_secret) in its
  config file and the replicas', never on a command line or in the env;
- PREFIX-lb: HAProxy on each mirror's own address (bind:port), balancing
  over its replicas with health checks on GET /v2/; TCP mode, so TLS passes
  through to the replicas, which each terminate it.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
import requests
from docker.types import LogConfig, Mount

from .. import render
from ..model.settings import Settings
from ..errors import DockerError, MirrorStartError, PortInUse
from ..host import ports, redis_secret
from ..host.files import atomic_write
from ..host.layout import Layout
from ..model.replicas import LB_SUFFIX, REDIS_SUFFIX, REPLICA_HOST, replica_names
from ..model.endpoint import Endpoint
from ..model.resources import Limits
from ..net.probes import answers, wait_until_answering
from . import tool_images
from .client import docker_errors, find_container
from .containers import (LABEL_CONFIG, LABEL_HASH, LABEL_LIMITS, START_TIMEOUT, config_of, file_digest,
                         has_limits, mirror_container_named)

LABEL_ROLE = "docker-mirror.role"     # lb or redis: a shared container of the replicas
LB, REDIS = "lb", "redis"


@dataclass(frozen=True)
class SharedSpec:
    role: str
    name: str
    tool: tool_images.Tool
    config_path: Path        # the host file, mounted read-only
    config_text: str = field(repr=False)   # Redis's holds its password
    ports: tuple[tuple[str, int, str], ...]   # (address, port, what) it listens on
    limits: Limits           # memory and pids (DOCKER_MIRROR_HAPROXY/REDIS_MEMORY_MB)
    files: tuple[tuple[str, str], ...] = ()   # more host files it reads, mounted read-only there


def lb_name(settings: Settings) -> str:
    return f"{settings.container_prefix}-{LB_SUFFIX}"


def redis_name(settings: Settings) -> str:
    return f"{settings.container_prefix}-{REDIS_SUFFIX}"


def servers(settings: Settings) -> dict[str, list[tuple[str, int]]]:
    """{upstream key: [(replica container name, its loopback port)]}"""
    r = settings.replicas
    return {u.key: list(zip(replica_names(settings.container_prefix, u.key, r.count),
                            (r.port(u.key, i) for i in range(r.count))))
            for u in settings.upstreams}


def plan(settings: Settings, layout: Layout) -> dict[str, SharedSpec]:
    r, resources = settings.replicas, settings.resources
    lb_ports = tuple((u.endpoint.bind, u.endpoint.port, f"the {u.registry} mirror's port")
                     for u in settings.upstreams) + ((REPLICA_HOST, r.stats_port, "HAProxy statistics"),)
    return {
        REDIS: SharedSpec(REDIS, redis_name(settings), tool_images.REDIS, layout.config_dir / "redis.conf",
                          render.redis_config(settings, password=redis_secret.ensure(layout),
                                              maxmemory=resources.redis_maxmemory),
                          ((REPLICA_HOST, r.redis_port, "Redis"),), resources.redis),
        LB: SharedSpec(LB, lb_name(settings), tool_images.HAPROXY, layout.config_dir / "haproxy.cfg",
                       render.haproxy_config(settings, servers(settings)), lb_ports, resources.haproxy,
                       files=((settings.tls_certificate, render.HAPROXY_TLS_CERT),
                              (settings.tls_key, render.HAPROXY_TLS_KEY)) if settings.tls_certificate else ()),
    }


def _hash(spec: SharedSpec, image: tool_images.ToolImage) -> str:
    hashed: list = [spec.config_text, image.image_id, spec.ports]
    # HAProxy reads its certificate once, at start: a re-issued one needs a new container.
    # (Appended only when there are files: a spec without keeps the hash it had.)
    if spec.files:
        hashed += [[target, file_digest(source)] for source, target in spec.files]
    return hashlib.sha256(json.dumps(hashed).encode()).hexdigest()[:16]


def _wait_listening(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((REPLICA_HOST, port), timeout=0.3):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _run(client, settings: Settings, spec: SharedSpec, image: tool_images.ToolImage, digest: str):
    atomic_write(spec.config_path, spec.config_text, mode=0o600)
    with docker_errors(f"replace container {spec.name}"):
        old = find_container(client, spec.name)
        if old is not None:
            old.remove(force=True, v=True)
    try:
        container = client.containers.run(
            image.image_id, name=spec.name, detach=True, network_mode="host",
            labels={LABEL_ROLE: spec.role, LABEL_HASH: digest, LABEL_CONFIG: config_of(settings),
                    LABEL_LIMITS: spec.limits.label},
            mounts=[Mount(spec.tool.config_path, str(spec.config_path), type="bind", read_only=True),
                    *(Mount(target, source, type="bind", read_only=True) for source, target in spec.files)],
            restart_policy={"Name": "unless-stopped"},
            log_config=LogConfig(type="json-file", config={"max-size": "10m", "max-file": "3"}),
            **spec.limits.docker_options())
    except (docker.errors.DockerException, requests.RequestException) as err:
        raise MirrorStartError(f"cannot start {spec.name}: {err}") from None
    if spec.role == REDIS:
        ok = _wait_listening(settings.replicas.redis_port, START_TIMEOUT)
    else:
        ok = all(wait_until_answering(u.endpoint, START_TIMEOUT) for u in settings.upstreams)
    if not ok:
        with docker_errors(f"read the log of {spec.name}"):
            container.reload()
            tail = container.logs(tail=15).decode(errors="replace").strip()
        raise MirrorStartError(f"{spec.name} ({container.status}) did not answer within "
                               f"{START_TIMEOUT:.0f} s; its last log lines:\n{tail}")


def apply(client, settings: Settings, layout: Layout, roles=(REDIS, LB), log=print) -> dict[str, str]:
    """Make the shared containers of `roles` run their current config; {name: what was done}."""
    done = {}
    specs = plan(settings, layout)
    for role in roles:
        spec = specs[role]
        image = tool_images.ensure(client, spec.tool)
        digest = _hash(spec, image)
        container = find_container(client, spec.name)
        if container is not None and container.status == "running" \
                and (container.labels or {}).get(LABEL_HASH) == digest and has_limits(container, spec.limits):
            done[spec.name] = "unchanged"
            continue
        ours = container is not None and container.status == "running"
        for address, port, what in spec.ports:
            if not ours and not ports.port_is_free(address, port):
                raise PortInUse(f"port {port} on {address} ({what}, for {spec.name}) is held by "
                                f"{ports.holder(port)}: stop it, or choose other ports in 'make menuconfig'")
        action = "created" if container is None else "recreated"
        _run(client, settings, spec, image, digest)
        log(f"{spec.name}: {'load balancer' if role == LB else 'Redis'} {action}")
        done[spec.name] = action
    return done


def remove(client, settings: Settings) -> list[str]:
    """Remove this .config's HAProxy and Redis containers (replicas off, or the mirror taken down)."""
    removed = []
    with docker_errors("list the replicas' shared containers"):
        for container in client.containers.list(all=True, ignore_removed=True, filters={"label": LABEL_ROLE}):
            if (container.labels or {}).get(LABEL_CONFIG) == config_of(settings):
                container.remove(force=True, v=True)
                removed.append(container.name)
    return removed


def shared_state(client, settings: Settings) -> dict[str, str]:
    """{container name: state} of HAProxy and Redis ('absent', 'unknown' without an engine)."""
    found = {}
    for name in (lb_name(settings), redis_name(settings)):
        try:
            container = find_container(client, name) if client is not None else None
            found[name] = "unknown" if client is None else container.status if container else "absent"
        except DockerError:
            found[name] = "unknown"
    return found


def replica_rows(client, settings: Settings, upstream) -> list[dict]:
    """Each replica of `upstream` (status): its container's state, its loopback address, whether
    it answers /v2/ there. Empty with one replica."""
    if not settings.replicas.enabled:
        return []
    rows = []
    for name, port in servers(settings)[upstream.key]:
        endpoint = Endpoint.of(REPLICA_HOST, port, upstream.endpoint.tls)
        rows.append({"name": name, "state": mirror_container_named(client, name).state, "address": endpoint.listen,
                     "answering": answers(endpoint)})
    return rows


def shared_status(client, settings: Settings) -> dict | None:
    """HAProxy and Redis (status), or None with one replica."""
    if not settings.replicas.enabled:
        return None
    r = settings.replicas
    found = shared_state(client, settings)
    return {"count": r.count,
            "load_balancer": {"name": lb_name(settings), "state": found[lb_name(settings)],
                              "stats": f"http://{REPLICA_HOST}:{r.stats_port}/stats"},
            "redis": {"name": redis_name(settings), "state": found[redis_name(settings)],
                      "address": f"{REPLICA_HOST}:{r.redis_port}"}}
