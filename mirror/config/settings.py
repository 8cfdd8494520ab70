"""The settings (mirror.model.settings), built once from `.config` and validated.

Everything downstream takes a Settings; only mirror.config reads `.config`.
Every rejected value raises ConfigError naming the CONFIG_ symbol, the value,
where it was set and what is allowed. Facts derived from the values (each
mirror's addresses, its debug port) are derived here, once, into an Endpoint.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

from ..engine import build as engine_build
from ..errors import ConfigError
from ..model import images
from ..model.endpoint import DEBUG_PORT_OFFSET, Endpoint
from ..model.retention import Policy
from ..model.settings import Observe, Settings, Upstream
from ..model.tls import generated_files as tls_files
from . import dotconfig
from .reader import Reader, is_secret  # noqa: F401 -- is_secret: settings.is_secret is its API
from .storage import from_config as _storage
from .client_credential import from_config as _client_credential
from .replicas import from_config as _replicas
from .resources import from_config as _resources

# (key, Kconfig stem, registry host, offset of the default port from the main one)
UPSTREAMS = (
    ("dockerhub", "DOCKERHUB", images.DOCKER_HUB, 0),
    ("ghcr", "GHCR", "ghcr.io", 1),
    ("quay", "QUAY", "quay.io", 2),
    ("k8s", "K8S", "registry.k8s.io", 3),
    ("custom", "CUSTOM", None, 4),
)

UPSTREAM_KEYS = tuple(key for key, *_ in UPSTREAMS)

# (Kconfig stem, repository) of the images to keep warm
WARM_IMAGES = (
    ("MINIO", "minio/minio"),
    ("MILVUS", "milvusdb/milvus"),
    ("ETCD", "quay.io/coreos/etcd"),
    ("VLLM_OPENAI", "vllm/vllm-openai"),
    ("VLLM_CPU", "openeuler/vllm-cpu"),
    ("VLLM_ROUTER", "ghcr.io/vllm-project/production-stack/router"),
    ("LMCACHE", "lmcache/vllm-openai"),
    ("LMCACHE_NIGHTLY", "lmcache/vllm-openai"),
)

_BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(?::[0-9]{1,5})?$")
_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,50}$")
_NFS_CLIENT = re.compile(r"^[A-Za-z0-9*?.:/_\[\]@-]+$")


def _upstreams(read: Reader, main_port: int, bind: str, tls: bool) -> tuple[Upstream, ...]:
    found = []
    used_ports: dict[int, str] = {}
    for key, stem, registry, offset in UPSTREAMS:
        prefix = f"DOCKER_MIRROR_{stem}"
        if key != "dockerhub" and not read.bool(prefix):
            continue
        if key == "custom":
            registry = read.str(f"{prefix}_REGISTRY").lower()
            if not _HOSTNAME.match(registry) or "." not in registry and ":" not in registry \
                    and registry != "localhost":
                read.fail(f"{prefix}_REGISTRY", registry,
                          "must be a registry host name such as registry.example.com[:port]")
        port_symbol = "DOCKER_MIRROR_PORT" if key == "dockerhub" else f"{prefix}_PORT"
        port = main_port if key == "dockerhub" else read.int(port_symbol)
        if port == 0:
            port = main_port + offset
            if port > 65535:
                read.fail(port_symbol, 0, f"defaults to DOCKER_MIRROR_PORT+{offset}={port}, "
                          "which is over 65535: set a port from 1 to 65535")
        if port in used_ports:
            read.fail(port_symbol, port, f"port already used by the {used_ports[port]}; "
                      "each upstream needs its own port")
        used_ports[port] = f"{key} mirror"
        endpoint = Endpoint.of(bind, port, tls)
        debug = endpoint.debug_port
        if debug in used_ports:
            read.fail(port_symbol, port, f"its debug/metrics port {debug} (port +/- {DEBUG_PORT_OFFSET}) "
                      f"is the port of the {used_ports[debug]}; choose ports less than "
                      f"{DEBUG_PORT_OFFSET} apart")
        used_ports[debug] = f"debug port of the {key} mirror"
        found.append(Upstream(key, registry, read.url(f"{prefix}_REMOTE_URL"), endpoint,
                              read.str(f"{prefix}_USERNAME"), read.str(f"{prefix}_PASSWORD")))
    return tuple(found)


def _check_htpasswd(read: Reader, symbol: str, path: str) -> None:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        read.fail(symbol, path, f"must be a readable htpasswd file ({err.strerror})")
    users = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        user, colon, digest = line.partition(":")
        if not colon or not user or not _BCRYPT.match(digest.strip()):
            # the hash itself is a secret: name the user and line, not the entry
            raise ConfigError(
                dotconfig.PREFIX + symbol, path,
                f"line {number} (user {user!r}) is not a bcrypt entry; the registry accepts "
                "bcrypt only: recreate it with 'htpasswd -B FILE USER'",
                read.config.source(symbol))
        users += 1
    if users == 0:
        read.fail(symbol, path, "holds no user; add one with 'htpasswd -B FILE USER'")


def _warm_images(read: Reader, registry_image: str) -> tuple[str, ...]:
    refs = []
    for stem, repository in WARM_IMAGES:
        symbol = f"DOCKER_MIRROR_IMAGE_{stem}"
        if read.bool(symbol):
            tag = read.str(f"{symbol}_TAG")
            joiner = "@" if tag.startswith("sha256:") else ":"
            refs.append(read.image(f"{symbol}_TAG", f"{repository}{joiner}{tag}", tag))
    if read.bool("DOCKER_MIRROR_IMAGE_REGISTRY"):
        refs.append(registry_image)
    return tuple(dict.fromkeys(refs))


_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                        r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def _client_address(read: Reader) -> str:
    value = read.str("DOCKER_MIRROR_CLIENT_ADDRESS").strip()
    if not value:
        return ""
    try:
        if ipaddress.ip_address(value).is_unspecified:
            raise ValueError(value)
        return value
    except ValueError:
        if _HOST_NAME.match(value) and not value.replace(".", "").isdigit():
            return value
    read.fail("DOCKER_MIRROR_CLIENT_ADDRESS", value,
              "must be a host name or an IP address other hosts reach this one by (empty: the bind address)")


def from_dotconfig(config: dotconfig.DotConfig) -> Settings:
    read = Reader(config)
    enabled = read.bool("ENABLE_DOCKER_MIRROR")
    path = read.path("DOCKER_MIRROR_PATH")
    port = read.int("DOCKER_MIRROR_PORT")

    bind = read.ip("DOCKER_MIRROR_BIND_ADDRESS", "must be an IP address (127.0.0.1 for this host only, a LAN address, or 0.0.0.0)")

    registry_built = read.bool("DOCKER_MIRROR_REGISTRY_BUILT")
    upstream_registry_image = read.image("DOCKER_MIRROR_REGISTRY_IMAGE", read.str("DOCKER_MIRROR_REGISTRY_IMAGE"))
    # The built engine is named by this checkout's recipe and patches (no apt, no
    # network): mirror.engine.build.
    registry_image = engine_build.image_ref(engine_build.current_key()) if registry_built \
        else upstream_registry_image

    container_prefix = read.str("DOCKER_MIRROR_CONTAINER_PREFIX")
    if not _CONTAINER_NAME.match(container_prefix):
        read.fail("DOCKER_MIRROR_CONTAINER_PREFIX", container_prefix,
                  "must be 1-51 letters, digits, '_', '.' or '-', starting with a letter or digit")

    htpasswd = None
    if read.bool("DOCKER_MIRROR_HTPASSWD"):
        htpasswd = read.path("DOCKER_MIRROR_HTPASSWD_PATH")
        _check_htpasswd(read, "DOCKER_MIRROR_HTPASSWD_PATH", htpasswd)
    client_credential = _client_credential(read) if htpasswd else None
    tls_certificate = tls_key = tls_ca = None
    tls_generate = False
    if read.bool("DOCKER_MIRROR_TLS"):
        # A .config from before the choice lacks it: Kconfig's default keeps the certificate it names.
        tls_generate = read.bool("DOCKER_MIRROR_TLS_GENERATE")
        if tls_generate:
            tls_certificate, tls_key, tls_ca = tls_files(path)
        else:
            tls_certificate = read.path("DOCKER_MIRROR_TLS_CERTIFICATE")
            tls_key = read.path("DOCKER_MIRROR_TLS_KEY")
            tls_ca = read.path("DOCKER_MIRROR_TLS_CA_CERTIFICATE", required=False) or None

    on_calendar = read.str("DOCKER_MIRROR_REFRESH_ON_CALENDAR")
    refresh = read.bool("DOCKER_MIRROR_REFRESH")
    if refresh and (not on_calendar.strip() or not on_calendar.isprintable()
                    or any(c in on_calendar for c in "\\\"")):
        read.fail("DOCKER_MIRROR_REFRESH_ON_CALENDAR", on_calendar,
                  "must be a systemd OnCalendar expression such as '*-*-* 02:00:00' or 'daily'")

    nfs_export = read.bool("DOCKER_MIRROR_NFS_EXPORT")
    nfs_clients = tuple(read.str("DOCKER_MIRROR_NFS_CLIENTS").split())
    if nfs_export and not nfs_clients:
        read.fail("DOCKER_MIRROR_NFS_CLIENTS", "", "is required when exporting: hosts or networks "
                  "allowed to mount, e.g. '192.168.122.0/24'")
    for client in nfs_clients:
        if not _NFS_CLIENT.match(client):
            read.fail("DOCKER_MIRROR_NFS_CLIENTS", client,
                      "each client must be a host name, address, wildcard or CIDR network, "
                      "without options (the export is always read-only)")

    extra_list = read.path("DOCKER_MIRROR_IMAGES_EXTRA_LIST", required=False) or None

    observe_address = read.ip("DOCKER_MIRROR_OBSERVE_ADDRESS", "must be an IP address (127.0.0.1 for this host only)")
    observe = Observe(
        enabled=read.bool("DOCKER_MIRROR_OBSERVE"),
        address=observe_address,
        port=read.int("DOCKER_MIRROR_OBSERVE_PORT"),
        interval=read.int("DOCKER_MIRROR_OBSERVE_INTERVAL"),
        textfile_dir=read.path("DOCKER_MIRROR_OBSERVE_TEXTFILE_DIR", required=False) or None)

    upstreams = _upstreams(read, port, bind, tls_certificate is not None)
    storage = _storage(read, path)
    return Settings(
        config_path=config.path,
        enabled=enabled,
        install=enabled and read.bool("INSTALL_DOCKER_MIRROR"),
        use=enabled and read.bool("USE_DOCKER_MIRROR"),
        auto_detect=read.bool("DOCKER_MIRROR_AUTO_DETECT"),
        path=path,
        port=port,
        bind_address=bind,
        pull_through=read.bool("DOCKER_MIRROR_PULL_THROUGH_CACHE"),
        registry_image=registry_image,
        upstream_registry_image=upstream_registry_image,
        container_prefix=container_prefix,
        upstreams=upstreams,
        storage=storage,
        htpasswd_path=htpasswd,
        tls_certificate=tls_certificate,
        tls_key=tls_key,
        # The built engine is on no registry: keep the upstream image warm instead
        # (what the Kubernetes manifests run by default).
        warm_images=_warm_images(read, upstream_registry_image),
        extra_image_list=extra_list,
        refresh=refresh,
        refresh_on_calendar=on_calendar,
        refresh_random_delay=read.int("DOCKER_MIRROR_REFRESH_RANDOM_DELAY"),
        pull_concurrency=read.int("DOCKER_MIRROR_PULL_CONCURRENCY"),
        pull_all_platforms=read.bool("DOCKER_MIRROR_PULL_ALL_PLATFORMS"),
        log_retention_days=read.int("DOCKER_MIRROR_LOG_RETENTION_DAYS"),
        keeper=read.bool("DOCKER_MIRROR_KEEPER"),
        recheck_interval=read.int("DOCKER_MIRROR_RECHECK_INTERVAL"),
        nfs_export=nfs_export,
        nfs_clients=nfs_clients,
        lifecycle=Policy(
            keep_unused_days=read.int("DOCKER_MIRROR_KEEP_UNUSED_DAYS"),
            max_bytes=read.int("DOCKER_MIRROR_CACHE_MAX_SIZE_GB") << 30,
            keep_previous=read.int("DOCKER_MIRROR_KEEP_PREVIOUS_DIGESTS")),
        observe=observe,
        client_address=_client_address(read),
        tls_generate=tls_generate,
        tls_ca=tls_ca,
        client_credential=client_credential,
        replicas=_replicas(read, storage, port, upstreams, taken=observe.enabled and {
            observe.port: "port of the metrics and status page (DOCKER_MIRROR_OBSERVE_PORT)"}),
        registry_built=registry_built,
        resources=_resources(read),
    )


def load(path: str | Path = ".config") -> Settings:
    return from_dotconfig(dotconfig.load(path))


def load_default() -> Settings:
    """The settings of $KCONFIG_CONFIG (default .config), as make passes them."""
    return load(os.environ.get("KCONFIG_CONFIG", ".config"))
