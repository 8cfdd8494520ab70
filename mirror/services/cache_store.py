"""One mirror's storage as the cache's lifecycle reads and prunes it, on every backend.

`open_store()` gives a `FileStore` (the storage tree, mirror.host.storage)
or an object store (mirror.net.s3.Bucket, mirror.net.azure_blob.Container),
which answer the same calls: repositories(), revisions(), tags(),
tag_history(), read_manifest(), blob_size(), cached_since(), usage(), has_image() (check-mirror's
IMAGE_EXISTS), and, with every
registry on that storage stopped, remove_manifest(), purge_uploads(),
tidy(). The lifecycle (mirror.services.lifecycle) is written once on them.

`probe()` asks an object store for a few bytes of a cached blob, which is
what a pull needs and what distribution's own storage health check (a LIST
of its root) does not: with SeaweedFS's volume server gone the LIST still
answers while every blob read fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import StoreError
from ..host import storage
from ..host.layout import Layout
from ..model import retention
from ..model.settings import Settings, Upstream
from ..net.azure_blob import Container
from ..net.s3 import Bucket

# The status's probe: one attempt, a short timeout (status must answer quickly).
PROBE_TIMEOUT = 5.0
UPLOAD_AGE = retention.UPLOAD_AGE_HOURS * 3600.0   # seconds


class FileStore:
    """The filesystem backend's storage tree of one mirror."""

    def __init__(self, storage_dir):
        self.storage_dir = storage_dir
        self.where = f"storage directory {storage_dir}"

    def repositories(self) -> list[str]:
        return storage.repositories(self.storage_dir)

    def revisions(self, repository: str) -> list[str]:
        return storage.revisions(self.storage_dir, repository)

    def tags(self, repository: str) -> dict[str, str]:
        return storage.tags(self.storage_dir, repository)

    def tag_history(self, repository: str, tag: str) -> list[str]:
        return storage.tag_history(self.storage_dir, repository, tag)

    def read_manifest(self, digest: str) -> bytes | None:
        return storage.read_manifest(self.storage_dir, digest)

    def blob_size(self, digest: str) -> int:
        return storage.blob_size(self.storage_dir, digest)

    def cached_since(self, repository: str, digest: str) -> float | None:
        try:
            return storage.StorageTree(self.storage_dir).revision_link(repository, digest).stat().st_mtime
        except (OSError, ValueError):
            return None

    def usage(self) -> int:
        return storage.disk_usage(self.storage_dir)

    def remove_manifest(self, repository: str, digest: str) -> list[str]:
        return storage.remove_manifest(self.storage_dir, repository, digest)

    def purge_uploads(self, older_than: float | None = None) -> int:
        # Every upload (the registry is stopped); its own purger deletes the old ones meanwhile.
        return storage.purge_uploads(self.storage_dir)

    def tidy(self) -> int:
        return storage.tidy(self.storage_dir)

    def forget(self) -> None:
        pass   # read from the disk at every call

    def has_image(self, ref) -> bool:
        return storage.has_image(self.storage_dir, ref)


def is_object_store(settings: Settings) -> bool:
    return settings.storage.backend in ("s3", "azure")


def open_store(settings: Settings, upstream: Upstream, timeout: float = 10.0, attempts: int = 3):
    """The storage of `upstream`'s mirror (every replica of it shares one)."""
    backend = settings.storage.backend
    if backend == "s3":
        return Bucket(settings.storage, upstream.key, timeout, attempts)
    if backend == "azure":
        return Container(settings.storage, upstream.key, timeout, attempts)
    return FileStore(Layout.of(settings).storage_dir(upstream))


@dataclass(frozen=True)
class Probe:
    answering: bool
    seconds: float
    error: str | None = None


def probe(settings: Settings, upstream: Upstream, timeout: float = PROBE_TIMEOUT) -> Probe | None:
    """Can the object store serve a blob now? None on the filesystem backend (status reads it).

    Reads the first bytes of the first blob the store lists (a LIST alone is
    answered by an S3 gateway whose data servers are gone); with no blob yet,
    the LIST answering is enough."""
    if not is_object_store(settings):
        return None
    started = time.monotonic()
    try:
        store = open_store(settings, upstream, timeout, attempts=1)
        blobs = store.list(f"{store.prefix}/blobs/", limit=1)
        if blobs and store.read(blobs[0].key, 1024) is None:
            raise StoreError(f"{store.where}: {blobs[0].key} is listed but cannot be read")
    except StoreError as err:
        return Probe(False, time.monotonic() - started, str(err))
    return Probe(True, time.monotonic() - started)
