"""The registry containers: one per upstream, and the short-lived maintenance one.

One path for all of them, in the style of docker-py's `_create_container_args`:
`plan()` / `maintenance_plan()` are pure and turn settings into a
RegistrySpec (rendered config, mounts, labels, a hash of all of it);
`apply()` and `temporary()` make the engine run specs, through `_run()`.
Only containers whose spec changed or that are not running are touched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
import requests
from docker.types import LogConfig, Mount

from .. import render
from ..config.settings import UPSTREAM_KEYS
from ..model.settings import Settings, Upstream
from ..errors import DockerError, MaintenanceError, MirrorStartError, PortInUse
from ..host import credential, locks, ports, redis_secret
from ..host.files import atomic_write
from ..host.layout import Layout
from ..model.endpoint import DEBUG_HOST, Endpoint
from ..model.modes import PLAIN
from ..model.replicas import REPLICA_HOST, replica_names
from ..model.resources import Limits
from ..net.probes import wait_until_answering
from .client import docker_errors, find_container
from . import registry_log
from .registry_image import RegistryImage

LABEL_UPSTREAM = "docker-mirror.upstream"
LABEL_MODE = "docker-mirror.mode"
LABEL_HASH = "docker-mirror.config-hash"
LABEL_ADDRESS = "docker-mirror.address"
LABEL_MAJOR = "docker-mirror.registry-major"  # distribution 2 or 3
# The .config a mirror container belongs to: with the mirror switched off,
# .config no longer names its prefix, and this is how its containers are found.
LABEL_CONFIG = "docker-mirror.config"
# A maintenance registry has no LABEL_UPSTREAM: remove_unconfigured() must not take it for a mirror.
LABEL_MAINTENANCE = "docker-mirror.maintenance"
# The memory and pids limits it was made with (model.resources.Limits.label): compared, not the
# engine's HostConfig, which drops a limit the kernel cannot apply (no swap accounting, no pids
# cgroup) and would have every check re-create the container.
LABEL_LIMITS = "docker-mirror.limits"

START_TIMEOUT = 20.0       # seconds for a new registry to answer /v2/


@dataclass(frozen=True)
class RegistrySpec:
    upstream: Upstream    # its endpoint is where the container listens
    name: str
    mode: str
    config_path: str      # host file holding the rendered config
    config_text: str = field(repr=False)   # holds the http secret and passwords
    mounts: tuple[tuple[str, str, bool], ...]  # (host source, container target, read-only)
    config_hash: str
    registry_major: int
    limits: Limits        # memory and pids (DOCKER_MIRROR_REGISTRY_MEMORY_MB)
    lasting: bool = True  # a mirror: restarted unless stopped; False: a temporary container
    config: str = ""      # the absolute path of the .config it belongs to (LABEL_CONFIG)

    @property
    def address(self) -> str:
        return self.upstream.endpoint.listen

    @property
    def labels(self) -> dict[str, str]:
        if not self.lasting:
            return {LABEL_MAINTENANCE: self.upstream.key}
        return {LABEL_UPSTREAM: self.upstream.key, LABEL_MODE: self.mode,
                LABEL_HASH: self.config_hash, LABEL_ADDRESS: self.address,
                LABEL_MAJOR: str(self.registry_major), LABEL_CONFIG: self.config}


@dataclass(frozen=True)
class MirrorContainer:
    """What the engine says about one mirror's container."""

    name: str
    state: str            # running, exited, ..., absent, unknown (engine unreachable)
    mode: str | None
    major: str | None     # the distribution major it runs, from its label


def container_name(settings: Settings, upstream: Upstream) -> str:
    return _name(settings, upstream.key)


def _name(settings: Settings, key: str) -> str:
    return f"{settings.container_prefix}-{key}"


def container_names(settings: Settings, upstream: Upstream) -> list[str]:
    """The registry containers serving `upstream`: its mirror, or its replicas (PREFIX-KEY-rN)."""
    if settings.replicas.enabled:
        return replica_names(settings.container_prefix, upstream.key, settings.replicas.count)
    return [container_name(settings, upstream)]


def _spec(settings: Settings, layout: Layout, image: RegistryImage, upstream: Upstream, mode: str,
          http_secret: str, *, name: str, config_path, lasting: bool = True,
          redis: dict | None = None) -> RegistrySpec:
    text = render.registry_config(settings, upstream, major=image.major, mode=mode, http_secret=http_secret,
                                  redis=redis)
    mounts = [(str(config_path), image.config_path, True)]
    if settings.storage.backend == "filesystem":
        mounts.append((str(layout.storage_dir(upstream)), render.CONTAINER_STORAGE, False))
    if settings.htpasswd_path:
        # the user's file plus the product's own user (mirror.host.credential)
        mounts.append((str(credential.merged_htpasswd_path(layout)), render.CONTAINER_HTPASSWD, True))
    if settings.tls_certificate:
        mounts.append((settings.tls_certificate, render.CONTAINER_TLS_CERT, True))
        mounts.append((settings.tls_key, render.CONTAINER_TLS_KEY, True))
    if settings.storage.ca_bundle:
        # Go reads every file of /etc/ssl/certs besides the image's bundle: trusted in addition.
        mounts.append((settings.storage.ca_bundle, CONTAINER_STORAGE_CA, True))
    # The hash of these: an unchanged configuration keeps its container. The registry reads
    # each file once, at start, and a file mount keeps the inode it was made with: so the
    # bytes of every mounted file count (a password changed in htpasswd, a certificate
    # re-issued), not only its path. The config's own bytes are `text`; a directory (the
    # storage) is data, read as the registry goes. (Appended after the mounts: a mirror
    # without file mounts keeps the hash earlier versions gave it.)
    hashed: list = [text, image.image_id, mounts]
    hashed += [file_digest(source) for source, _, _ in mounts[1:] if Path(source).is_file()]
    digest = hashlib.sha256(json.dumps(hashed).encode()).hexdigest()
    return RegistrySpec(upstream, name, mode, str(config_path), text, tuple(mounts), digest[:16],
                        image.major, settings.resources.registry, lasting, config_of(settings))


# DOCKER_MIRROR_STORAGE_CA_BUNDLE, in the directory Go's crypto/x509 reads on Linux.
CONTAINER_STORAGE_CA = "/etc/ssl/certs/docker-mirror-storage-ca.crt"


def file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""   # not there (yet): the registry says so when it starts


def plan(settings: Settings, layout: Layout, image: RegistryImage, modes: dict[str, str],
         http_secret: str) -> list[RegistrySpec]:
    """One mirror container per upstream, in the mode chosen for it (or its replicas)."""
    if settings.replicas.enabled:
        return [spec for upstream in settings.upstreams
                for spec in _replica_specs(settings, layout, image, upstream, modes[upstream.key], http_secret)]
    return [_spec(settings, layout, image, upstream, modes[upstream.key], http_secret,
                  name=container_name(settings, upstream), config_path=layout.config_file(upstream))
            for upstream in settings.upstreams]


def _replica_specs(settings: Settings, layout: Layout, image: RegistryImage, upstream: Upstream, mode: str,
                   http_secret: str) -> list[RegistrySpec]:
    """The upstream's replicas: each on its loopback port (HAProxy has the mirror's address),
    with the same http secret, htpasswd and TLS, and the upstream's Redis database."""
    r = settings.replicas
    # The password is in the config text, so the spec's hash: a new one recreates the replicas.
    redis = {"addr": f"{REPLICA_HOST}:{r.redis_port}", "password": redis_secret.ensure(layout),
             "db": r.redis_db(upstream.key)}
    specs = []
    for index, name in enumerate(replica_names(settings.container_prefix, upstream.key, r.count)):
        endpoint = Endpoint.of(REPLICA_HOST, r.port(upstream.key, index), upstream.endpoint.tls)
        replica = dataclasses.replace(upstream, endpoint=endpoint)
        local = dataclasses.replace(settings, bind_address=REPLICA_HOST, upstreams=(replica,))
        specs.append(_spec(local, layout, image, replica, mode,
                           http_secret, name=name, redis=redis,
                           config_path=layout.config_dir / f"{upstream.key}-r{index + 1}.yml"))
    return specs


def maintenance_plan(settings: Settings, layout: Layout, image: RegistryImage, upstream: Upstream,
                     endpoint: Endpoint, http_secret: str) -> RegistrySpec:
    """A plain registry on the mirror's storage, listening on `endpoint` (loopback).

    Same registry image and http secret as the mirror; no htpasswd and no TLS,
    as it listens on loopback only, on a free port, and lives seconds.
    """
    if endpoint.tls:
        raise ValueError("the maintenance registry speaks plain HTTP on loopback")
    maintained = dataclasses.replace(upstream, endpoint=endpoint)
    local = dataclasses.replace(settings, bind_address=endpoint.bind, htpasswd_path=None,
                                tls_certificate=None, tls_key=None, upstreams=(maintained,))
    return _spec(local, layout, image, maintained, PLAIN,
                 http_secret, name=f"{container_name(settings, upstream)}-maintenance",
                 config_path=layout.maintenance_config(upstream), lasting=False)


def _needs_replacing(container, spec: RegistrySpec) -> bool:
    return (container is None or container.status != "running"
            or container.labels.get(LABEL_HASH) != spec.config_hash
            or not has_limits(container, spec.limits))


def has_limits(container, limits: Limits) -> bool:
    """The container was made with `limits` (one made before them, or with others, is replaced)."""
    return (container.labels or {}).get(LABEL_LIMITS) == limits.label


def check_ports(client, specs: list[RegistrySpec]) -> None:
    """Refuse before touching anything when another process holds a port a mirror needs.

    Each mirror needs its port on the bind address and its debug/metrics
    port on loopback; ports held by our own running container are ours.
    """
    for spec in specs:
        container = find_container(client, spec.name)
        if not _needs_replacing(container, spec):
            continue
        if container is not None and container.status == "running" \
                and container.labels.get(LABEL_ADDRESS) == spec.address:
            continue
        endpoint = spec.upstream.endpoint
        for address, port, what in ((endpoint.bind, endpoint.port, "its port"),
                                    (DEBUG_HOST, endpoint.debug_port, "its debug/metrics port")):
            if not ports.port_is_free(address, port):
                raise PortInUse(
                    f"port {port} on {address} ({what}, for the {spec.upstream.registry} mirror) is "
                    f"held by {ports.holder(port)}: stop it, or choose another port in "
                    f"'make menuconfig'; nothing was started")


def _write_config(spec: RegistrySpec) -> None:
    # Always 0600: every config holds the http secret, some an upstream password.
    path = Path(spec.config_path)
    if not path.exists() or path.read_text() != spec.config_text:
        atomic_write(path, spec.config_text, mode=0o600)
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)  # unchanged, but left readable by an older version or by hand


def _run(client, image: RegistryImage, spec: RegistrySpec, failure: type[DockerError]):
    """Replace whatever holds the name by a container running `spec`, answering."""
    _write_config(spec)
    with docker_errors(f"replace container {spec.name}"):
        old = find_container(client, spec.name)
        if old is not None:
            old.remove(force=True, v=True)
    options = dict(restart_policy={"Name": "unless-stopped"},
                   log_config=LogConfig(type="json-file", config={"max-size": "10m", "max-file": "3"})) \
        if spec.lasting else {}
    options.update(spec.limits.docker_options())
    try:
        container = client.containers.run(
            image.image_id, name=spec.name, detach=True,
            # Host networking: the registry listens on the bind address itself and
            # reaches upstreams (or a local proxy) exactly as this host does.
            network_mode="host", labels={**spec.labels, LABEL_LIMITS: spec.limits.label},
            mounts=[Mount(target, source, type="bind", read_only=ro) for source, target, ro in spec.mounts],
            **options)
    except (docker.errors.DockerException, requests.RequestException) as err:
        raise failure(f"cannot start {spec.name}: {err}") from None

    def died() -> bool:
        with docker_errors(f"watch {spec.name} start"):
            container.reload()
        # A restart since it was made is a crash (its restart policy hides "exited"): a panic
        # at start (a store refusing its key or its TLS) is reported now, not after the timeout.
        return container.status in ("exited", "dead") or container.attrs.get("RestartCount", 0) > 0

    if not wait_until_answering(spec.upstream.endpoint, START_TIMEOUT, gave_up=died):
        with docker_errors(f"read the log of {spec.name}"):
            tail = registry_log.failure_summary(container.logs(tail=200).decode(errors="replace"))
        raise failure(f"the {spec.upstream.registry} registry {spec.name} did not answer on "
                      f"{spec.address} within {START_TIMEOUT:.0f} s; its last log lines:\n{tail}")
    return container


def apply(client, image: RegistryImage, specs: list[RegistrySpec], log=print) -> dict[str, str]:
    """Make the engine run `specs`; returns {upstream key: what was done}."""
    check_ports(client, specs)
    done = {}
    for spec in specs:
        container = find_container(client, spec.name)
        if not _needs_replacing(container, spec):
            _write_config(spec)
            done.setdefault(spec.upstream.key, "unchanged")   # replicas: one change is the upstream's
            continue
        action = "created" if container is None else \
            "restarted" if container.status != "running" else "recreated"
        _run(client, image, spec, MirrorStartError)
        log(f"{spec.upstream.registry}: mirror {action} on {spec.address} ({spec.mode})")
        done[spec.upstream.key] = action
    return done


@contextmanager
def temporary(client, image: RegistryImage, spec: RegistrySpec, log=print):
    """Run `spec` for the time of the block (a leftover of a killed run is replaced)."""
    try:
        _run(client, image, spec, MaintenanceError)
        log(f"{spec.upstream.registry}: maintenance registry {spec.name} on {spec.address}")
        yield spec.upstream.endpoint
    finally:
        with docker_errors(f"remove container {spec.name}"):
            container = find_container(client, spec.name)
            if container is not None:
                container.remove(force=True, v=True)
        Path(spec.config_path).unlink(missing_ok=True)


# The registry binary in registry:2, registry:3 and the offline-built image alike.
IN_IMAGE_REGISTRY_BINARY = "/bin/registry"


def run_once(client, image: RegistryImage, spec: RegistrySpec, args: list[str], network: bool = False,
             limits: Limits | None = None) -> str:
    """Run the registry binary with `args` (e.g. garbage-collect CONFIG) on the spec's
    config and storage, to completion, with no network (`network`: this host's, to reach
    an object store); returns its output."""
    _write_config(spec)
    name = f"{spec.name}-once"
    try:
        with docker_errors(f"remove container {name}"):
            leftover = find_container(client, name)  # of a run that was killed
            if leftover is not None:
                leftover.remove(force=True, v=True)
        output = client.containers.run(
            image.image_id, args, entrypoint=[IN_IMAGE_REGISTRY_BINARY], name=name,
            network_mode="host" if network else "none",
            labels=spec.labels, remove=True, stdout=True, stderr=True,
            mounts=[Mount(target, source, type="bind", read_only=ro) for source, target, ro in spec.mounts],
            **(limits or spec.limits).docker_options())
    except docker.errors.ContainerError as err:
        tail = (err.stderr or b"").decode(errors="replace").strip()[-2000:]
        raise MaintenanceError(f"registry {args[0]} on the {spec.upstream.registry} storage failed "
                               f"(exit {err.exit_status}):\n{tail}") from None
    except docker.errors.DockerException as err:
        raise MaintenanceError(f"cannot run registry {args[0]} ({name}): {err}") from None
    finally:
        Path(spec.config_path).unlink(missing_ok=True)
    return output.decode(errors="replace")


def config_of(settings: Settings) -> str:
    return os.path.abspath(settings.config_path)


def _remove_mirrors(client, settings: Settings, keep: set[str], by_name: bool = True) -> list[str]:
    """Remove the containers labelled with this .config, and (`by_name`) those of this
    mirror's names that carry no such label (made before the label existed). Exact
    names, not a prefix: another mirror's prefix may start with this one's."""
    names = {_name(settings, key) for key in UPSTREAM_KEYS} if by_name else set()
    removed = []
    with docker_errors("list the mirror containers"):
        for container in client.containers.list(all=True, ignore_removed=True, filters={"label": LABEL_UPSTREAM}):
            owner = (container.labels or {}).get(LABEL_CONFIG)
            ours = owner == config_of(settings) if owner else container.name in names
            if ours and container.name not in keep:
                container.remove(force=True, v=True)
                removed.append(container.name)
    return removed


def remove_unconfigured(client, settings: Settings) -> list[str]:
    """Remove this mirror's containers of upstreams no longer configured."""
    return _remove_mirrors(client, settings, keep={name for u in settings.upstreams
                                                   for name in container_names(settings, u)})


def remove_all(client, settings: Settings) -> list[str]:
    """Remove every container of this mirror (make docker-mirror-remove). With the mirror
    switched off, .config's names are Kconfig's defaults: only the label counts then."""
    return _remove_mirrors(client, settings, keep=set(), by_name=settings.enabled)


def mirror_container_named(client, name: str) -> MirrorContainer:
    """What the engine says about container `name` (see mirror_container)."""
    if client is None:
        return MirrorContainer(name, "unknown", None, None)
    try:
        container = find_container(client, name)
    except DockerError:
        return MirrorContainer(name, "unknown", None, None)
    if container is None:
        return MirrorContainer(name, "absent", None, None)
    labels = container.labels or {}
    return MirrorContainer(name, container.status, labels.get(LABEL_MODE), labels.get(LABEL_MAJOR))


def mirror_container(client, settings: Settings, upstream: Upstream) -> MirrorContainer:
    """The state, mode and distribution major of the mirror's container.

    `client` None (engine unreachable) or an engine error gives state
    'unknown': callers only report it, and go on.
    """
    return mirror_container_named(client, container_names(settings, upstream)[0])  # replicas: the first


@contextmanager
def stopped(client, settings: Settings, upstream: Upstream, timeout: int = 10):
    """The mirror's containers (every replica) stopped for the time of the block (whatever
    their state: a restart policy must not start one meanwhile), started again after if
    they ran. With replicas, no replica may write the shared storage mid-sweep."""
    stopped_ones = []
    # The setup lock keeps the keeper from "repairing" a container stopped on purpose.
    with locks.held(Layout.of(settings).setup_lock):
        try:
            for name in container_names(settings, upstream):
                with docker_errors(f"stop {name}"):
                    container = find_container(client, name)
                    if container is None:
                        continue
                    was = container.status
                    container.stop(timeout=timeout)
                    stopped_ones.append((container, was))
            yield
        finally:
            for container, was in stopped_ones:
                if was in ("running", "restarting"):
                    with docker_errors(f"start {container.name}"):
                        container.start()
