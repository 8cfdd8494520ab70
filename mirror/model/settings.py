"""The settings: typed, immutable values every layer takes (pure: no I/O).

mirror.config builds them from `.config` (from_dotconfig), checking every value;
nothing here reads a file. Facts derived from the values (each mirror's
addresses, its debug port) are derived there, once, into an Endpoint.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from .endpoint import Endpoint, bracketed
from .instance import InstanceNames
from .replicas import Replicas
from .resources import Resources
from .retention import Policy


def container_for(prefix: str, upstream_key: str) -> str:
    """azure: the blob container of one upstream's cache (distribution 2.8's azure
    driver has no root directory, so each upstream gets a container of its own)."""
    return f"{prefix}-{upstream_key}"


@dataclass(frozen=True)
class Storage:
    backend: str      # filesystem | azure | s3
    path: str         # filesystem: root of the per-upstream data directories
    azure_account_name: str = ""
    azure_account_key: str = field(default="", repr=False)
    azure_container: str = ""    # prefix: each upstream gets container "<this>-<upstream key>"
    azure_realm: str = ""         # the blob host is <account>.blob.<realm>
    s3_endpoint: str = ""     # scheme://host[:port]; https means secure
    s3_region: str = ""
    s3_bucket: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = field(default="", repr=False)
    s3_path_style: bool = False   # DOCKER_MIRROR_S3_PATH_STYLE (config/ always sets it)
    s3_secure: bool = True
    s3_root: str = ""         # key prefix; each upstream gets a subdirectory
    ca_bundle: str = ""       # azure, s3: PEM file of CAs the registry trusts for the store
    redirect: bool = False    # azure, s3: blob GETs redirected to the store (clients reach it)

    def azure_container_for(self, upstream_key: str) -> str:
        """azure: the blob container of one upstream (2.8's driver has no prefix option)."""
        return container_for(self.azure_container, upstream_key)


@dataclass(frozen=True)
class Upstream:
    key: str          # dockerhub, ghcr, quay, k8s, custom
    registry: str     # the host image names start with: docker.io, ghcr.io, ...
    remote_url: str
    endpoint: Endpoint  # where its mirror listens and is reached
    username: str
    password: str = field(repr=False)

    @property
    def port(self) -> int:
        return self.endpoint.port

    @property
    def display_url(self) -> str:
        """The remote URL without any user:password@ in it: the one to log and show."""
        parts = urlsplit(self.remote_url)
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


@dataclass(frozen=True)
class Observe:
    """The metrics and status page service (Kconfig "Metrics and status page")."""

    enabled: bool
    address: str
    port: int
    interval: int                  # seconds between samples
    textfile_dir: str | None       # node_exporter's textfile collector directory

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    config_path: str
    enabled: bool
    install: bool
    use: bool
    auto_detect: bool
    path: str
    port: int
    bind_address: str
    pull_through: bool
    registry_image: str                # what the mirrors run: the built engine's image, or the user's
    # DOCKER_MIRROR_REGISTRY_IMAGE (its default with the built engine): an image any host can pull
    upstream_registry_image: str
    container_prefix: str
    upstreams: tuple[Upstream, ...]
    storage: Storage
    htpasswd_path: str | None
    tls_certificate: str | None
    tls_key: str | None
    warm_images: tuple[str, ...]       # normalised references
    extra_image_list: str | None
    refresh: bool
    refresh_on_calendar: str
    refresh_random_delay: int          # minutes; 0: none
    pull_concurrency: int
    pull_all_platforms: bool
    log_retention_days: int
    keeper: bool                       # a keeper keeps the mirrors up (mirror.services.keeper)
    recheck_interval: int              # seconds between the keeper's checks
    nfs_export: bool
    nfs_clients: tuple[str, ...]
    lifecycle: Policy                  # the cache's retention policy (Kconfig "Cache lifecycle")
    observe: Observe
    resources: Resources               # containers' memory and pids limits (model/resources.py)
    client_address: str = ""           # DOCKER_MIRROR_CLIENT_ADDRESS: what other hosts dial
    tls_generate: bool = False         # the tls_* files are made by mirror.host.tls
    tls_ca: str | None = None          # the CA clients are given (generated, or given with the certificate)
    # DOCKER_MIRROR_CLIENT_USERNAME/_PASSWORD: what clients are given (never in a repr)
    client_credential: tuple[str, str] | None = field(default=None, repr=False)
    replicas: Replicas = Replicas()    # DOCKER_MIRROR_REPLICAS: registries per upstream behind HAProxy
    # DOCKER_MIRROR_REGISTRY_BUILT: registry_image is the engine built on this host
    # (mirror.engine.build), local to it: a cluster needs another (mirror.services.k8s_manifests)
    registry_built: bool = False

    def __post_init__(self):
        # The endpoints are derived from bind_address and TLS once, in from_dotconfig();
        # a copy that changed one without the other would listen on one address and be
        # probed, rendered and handed to clients on another.
        for upstream in self.upstreams:
            if (upstream.endpoint.bind, upstream.endpoint.tls) != (self.bind_address, self.tls_certificate is not None):
                raise ValueError(f"the {upstream.key} endpoint {upstream.endpoint} does not follow the settings' "
                                 "bind address and TLS: build Settings with from_dotconfig()")

    def upstream(self, key: str) -> Upstream | None:
        return next((u for u in self.upstreams if u.key == key), None)

    @property
    def instance(self) -> InstanceNames:
        """This mirror's unit and exports file names (its prefix keeps them apart from another's)."""
        return InstanceNames.of(self.container_prefix)

    @property
    def fleet_host(self) -> str:
        """The host other machines name the mirrors by (the fleet playbook's
        docker_mirror_address): DOCKER_MIRROR_CLIENT_ADDRESS, else a specific bind
        address, else (a wildcard bind) this host's name; loopback stays loopback."""
        if self.client_address:
            return bracketed(self.client_address)
        bind = ipaddress.ip_address(self.bind_address)
        if bind.is_unspecified:
            return socket.gethostname()
        return self.client_host

    @property
    def client_host(self) -> str:
        """The host this machine's clients name the mirrors by (they share the bind
        address; the Docker Hub mirror is always configured)."""
        return self.upstreams[0].endpoint.client_host
