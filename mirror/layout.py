"""Where things live under DOCKER_MIRROR_PATH (pure: paths only, no I/O)."""

from dataclasses import dataclass
from pathlib import Path

from .probes import host_port, probe_host
from .settings import Settings, Upstream

LABEL_UPSTREAM = "docker-mirror.upstream"
LABEL_MODE = "docker-mirror.mode"
LABEL_HASH = "docker-mirror.config-hash"
LABEL_ADDRESS = "docker-mirror.address"
LABEL_MAJOR = "docker-mirror.registry-major"  # distribution 2 or 3

# Modes a mirror container runs in
PULL_THROUGH = "pull-through"   # proxy to the upstream
OFFLINE = "offline"             # upstream unreachable: serve the cache read-only
PLAIN = "registry"              # pull-through switched off: a plain registry


@dataclass(frozen=True)
class Layout:
    root: Path
    storage_root: Path  # filesystem backend: one subdirectory per upstream

    @classmethod
    def of(cls, settings: Settings) -> "Layout":
        storage = settings.storage.path or f"{settings.path}/registry"
        return cls(Path(settings.path), Path(storage))

    @property
    def registry_dir(self) -> Path:
        return self.root / "registry"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def manifest(self) -> Path:
        return self.images_dir / "manifest.txt"

    @property
    def archives_dir(self) -> Path:
        return self.images_dir / "archives"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def http_secret(self) -> Path:
        return self.config_dir / "http-secret"

    @property
    def last_refresh(self) -> Path:
        return self.logs_dir / "last-refresh.json"

    @property
    def refresh_lock(self) -> Path:
        return self.root / ".refresh.lock"

    def config_file(self, upstream: Upstream) -> Path:
        """The Docker Hub mirror's config is config/config.yml, as in kdevops."""
        name = "config.yml" if upstream.key == "dockerhub" else f"{upstream.key}.yml"
        return self.config_dir / name

    def storage_dir(self, upstream: Upstream) -> Path:
        return self.storage_root / upstream.key


def mirror_url(settings: Settings, upstream: Upstream) -> str:
    """Where this host reaches the mirror of `upstream`."""
    scheme = "https" if settings.tls_certificate else "http"
    return f"{scheme}://{host_port(probe_host(settings.bind_address), upstream.port)}"


def container_name(settings: Settings, upstream: Upstream) -> str:
    return f"{settings.container_prefix}-{upstream.key}"
