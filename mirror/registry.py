"""The mirror's registry containers, one per upstream, through the Docker SDK.

`plan()` is pure: it turns settings and the chosen modes into container specs
(rendered config, mounts, labels, a hash of all of it). `apply()` makes the
engine match the plan, touching only containers whose spec changed or that
are not running.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import docker
import docker.errors
import requests
from docker.types import LogConfig, Mount

from . import layout as L
from . import ports, probes, render
from .errors import DockerError, MirrorError
from .registry_image import RegistryImage
from .settings import Settings, Upstream

START_TIMEOUT = 20.0       # seconds for a new registry to answer /v2/
UPSTREAM_TIMEOUT = 1.5     # seconds for an upstream to answer /v2/


class PortInUse(MirrorError):
    exit_code = 3


class MirrorStartError(DockerError):
    pass


@dataclass(frozen=True)
class MirrorSpec:
    upstream: Upstream
    name: str
    mode: str
    address: str          # bind:port the registry listens on
    config_path: str      # host file holding the rendered config
    config_text: str
    mounts: tuple[tuple[str, str, bool], ...]  # (host source, container target, read-only)
    config_hash: str
    registry_major: int

    @property
    def labels(self) -> dict[str, str]:
        return {L.LABEL_UPSTREAM: self.upstream.key, L.LABEL_MODE: self.mode,
                L.LABEL_HASH: self.config_hash, L.LABEL_ADDRESS: self.address,
                L.LABEL_MAJOR: str(self.registry_major)}


def connect() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except docker.errors.DockerException as err:
        raise DockerError(
            f"cannot reach the Docker engine ({err}); start it with 'make deps' "
            "(or 'scripts/start-docker-engine.sh')") from None


def upstream_answers(url: str, timeout: float = UPSTREAM_TIMEOUT) -> bool:
    """True when the upstream registry answers at all (401 from Docker Hub counts)."""
    try:
        return requests.get(f"{url}/v2/", timeout=timeout).status_code < 500
    except requests.RequestException:
        return False


def choose_mode(settings: Settings, upstream_up: bool) -> str:
    if not settings.pull_through:
        return L.PLAIN
    # distribution 2.8 panics at start when its upstream is unreachable:
    # serve the cache read-only until the upstream answers again.
    return L.PULL_THROUGH if upstream_up else L.OFFLINE


def plan(settings: Settings, layout: L.Layout, image: RegistryImage, modes: dict[str, str],
         http_secret: str) -> list[MirrorSpec]:
    specs = []
    for upstream in settings.upstreams:
        mode = modes[upstream.key]
        text = render.registry_config(settings, upstream, major=image.major, mode=mode,
                                      http_secret=http_secret)
        config_path = layout.config_file(upstream)
        mounts = [(str(config_path), image.config_path, True)]
        if settings.storage.backend == "filesystem":
            mounts.append((str(layout.storage_dir(upstream)), render.CONTAINER_STORAGE, False))
        if settings.htpasswd_path:
            mounts.append((settings.htpasswd_path, render.CONTAINER_HTPASSWD, True))
        if settings.tls_certificate:
            mounts.append((settings.tls_certificate, render.CONTAINER_TLS_CERT, True))
            mounts.append((settings.tls_key, render.CONTAINER_TLS_KEY, True))
        digest = hashlib.sha256(json.dumps([text, image.image_id, mounts]).encode()).hexdigest()
        specs.append(MirrorSpec(upstream, L.container_name(settings, upstream), mode,
                                probes.host_port(settings.bind_address, upstream.port), str(config_path), text,
                                tuple(mounts), digest[:16], image.major))
    return specs


def _current(client: docker.DockerClient, name: str):
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def _needs_replacing(container, spec: MirrorSpec) -> bool:
    return (container is None or container.status != "running"
            or container.labels.get(L.LABEL_HASH) != spec.config_hash)


def check_ports(client: docker.DockerClient, specs: list[MirrorSpec], bind_address: str) -> None:
    """Refuse before touching anything when another process holds a port a mirror needs.

    Each mirror needs its port on the bind address and its debug/metrics
    port on loopback; ports held by our own running container are ours.
    """
    for spec in specs:
        container = _current(client, spec.name)
        if not _needs_replacing(container, spec):
            continue
        ours = container is not None and container.status == "running" \
            and container.labels.get(L.LABEL_ADDRESS) == spec.address
        if ours:
            continue
        debug = render.debug_port(spec.upstream.port)
        for address, port, what in ((bind_address, spec.upstream.port, "its port"),
                                    ("127.0.0.1", debug, "its debug/metrics port")):
            if not ports.port_is_free(address, port):
                raise PortInUse(
                    f"port {port} on {address} ({what}, for the {spec.upstream.registry} mirror) is "
                    f"held by {ports.holder(port)}: stop it, or choose another port in "
                    f"'make menuconfig'; nothing was started")


def wait_until_answering(host: str, port: int, container=None, timeout: float = START_TIMEOUT,
                         tls: bool = False) -> bool:
    """Poll /v2/ until the registry answers; False on timeout or when `container` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probes.registry_answers(host, port, tls=tls):
            return True
        if container is not None:
            container.reload()
            if container.status in ("exited", "dead"):
                return False
        time.sleep(0.1)
    return False


def _wait_until_answering(container, spec: MirrorSpec, host: str, tls: bool) -> None:
    if wait_until_answering(host, spec.upstream.port, container, tls=tls):
        return
    tail = container.logs(tail=15).decode(errors="replace").strip()
    raise MirrorStartError(f"the {spec.upstream.registry} mirror ({spec.name}) did not answer on "
                           f"{spec.address} within {START_TIMEOUT:.0f} s; its last log lines:\n{tail}")


def apply(client: docker.DockerClient, image: RegistryImage, specs: list[MirrorSpec],
          bind_address: str, tls: bool = False, log=print) -> dict[str, str]:
    """Make the engine run `specs`; returns {upstream key: what was done}."""
    check_ports(client, specs, bind_address)
    done = {}
    for spec in specs:
        container = _current(client, spec.name)
        if not _needs_replacing(container, spec):
            done[spec.upstream.key] = "unchanged"
            continue
        action = "created"
        if container is not None:
            action = "restarted" if container.status != "running" else "recreated"
            container.remove(force=True, v=True)
        container = client.containers.run(
            image.image_id, name=spec.name, detach=True,
            # Host networking: the registry listens on the bind address itself and
            # reaches upstreams (or a local proxy) exactly as this host does.
            network_mode="host",
            restart_policy={"Name": "unless-stopped"},
            labels=spec.labels,
            mounts=[Mount(target, source, type="bind", read_only=ro) for source, target, ro in spec.mounts],
            log_config=LogConfig(type="json-file", config={"max-size": "10m", "max-file": "3"}),
        )
        _wait_until_answering(container, spec, probes.probe_host(bind_address), tls)
        log(f"{spec.upstream.registry}: mirror {action} on {spec.address} ({spec.mode})")
        done[spec.upstream.key] = action
    return done


def remove_unconfigured(client: docker.DockerClient, settings: Settings) -> list[str]:
    """Remove this mirror's containers of upstreams no longer configured."""
    keep = {L.container_name(settings, u) for u in settings.upstreams}
    removed = []
    for container in client.containers.list(all=True, filters={"label": L.LABEL_UPSTREAM}):
        if container.name.startswith(f"{settings.container_prefix}-") and container.name not in keep:
            container.remove(force=True, v=True)
            removed.append(container.name)
    return removed
