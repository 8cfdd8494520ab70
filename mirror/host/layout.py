"""The mirror directory, DOCKER_MIRROR_PATH: where everything lives, and making it.

`Layout` is paths only; ensure() and http_secret() are the writes that
set the directory up.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from ..model.settings import Settings, Upstream
from ..errors import HostError
from .files import atomic_write


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

    @property
    def setup_lock(self) -> Path:
        return self.root / ".setup.lock"

    @property
    def keeper_lock(self) -> Path:
        return self.root / ".keeper.lock"

    @property
    def keeper_log(self) -> Path:
        """Where the keeper writes without systemd (with it, the journal)."""
        return self.logs_dir / "keeper.log"

    def config_file(self, upstream: Upstream) -> Path:
        """The Docker Hub mirror's config is config/config.yml, as in kdevops."""
        name = "config.yml" if upstream.key == "dockerhub" else f"{upstream.key}.yml"
        return self.config_dir / name

    def storage_dir(self, upstream: Upstream) -> Path:
        return self.storage_root / upstream.key

    def maintenance_config(self, upstream: Upstream) -> Path:
        """The config of the short-lived registry that restores archives."""
        return self.config_dir / f".maintenance-{upstream.key}.yml"

    @property
    def clients_state(self) -> Path:
        """What docker-mirror-clients added, so that undo takes back exactly that."""
        return self.config_dir / "clients-state.json"


def ensure(layout: Layout, settings: Settings, empty_manifest: str) -> None:
    """Create the directories (and an empty images/manifest.txt) that are missing,
    and check the mirror directory takes writes: a read-only file system, a full
    disk or a missing permission is said here, before any container starts."""
    try:
        for directory in (layout.root, layout.config_dir, layout.images_dir, layout.archives_dir,
                          layout.logs_dir, layout.registry_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if settings.storage.backend == "filesystem":
            for upstream in settings.upstreams:
                layout.storage_dir(upstream).mkdir(parents=True, exist_ok=True)
        if not layout.manifest.exists():
            atomic_write(layout.manifest, empty_manifest)
        # Every directory may exist already (a mirror directory mounted read-only later).
        atomic_write(layout.config_dir / ".writable", "")
        (layout.config_dir / ".writable").unlink()
    except OSError as err:
        raise HostError(f"DOCKER_MIRROR_PATH={str(layout.root)!r}: cannot write "
                        f"{err.filename or layout.root} ({err.strerror or err}); choose a writable "
                        "directory ('make menuconfig', or --path) or make this one writable") from None


def http_secret(layout: Layout) -> str:
    """Generated once and kept: a new secret per start would break uploads in flight."""
    try:
        return layout.http_secret.read_text().strip()
    except FileNotFoundError:
        secret = secrets.token_urlsafe(32)
        atomic_write(layout.http_secret, secret + "\n", mode=0o600)
        return secret
