"""A blob cached by a mirror that runs the engine built here (patches/distribution, fetch-once).

That engine fetches a cold blob upstream once, for its storage and for every
client at the same time, commits it when its digest matched, and only then
sends the last byte. So the warm reads each blob through the mirror to its
end: no storage tree to poll, no second fetch. What the end of the body says:

- complete, sha256 right: the blob is stored (a look at the storage then
  only tells a full disk, where the engine serves on but stores nothing);
- one byte short of its Content-Length: the engine refused it (the digest
  did not match; nothing stored);
- shorter still: a broken transfer (TransferBroken): a replica or the
  upstream went, or the digest did not match while this reader was behind
  (the engine then ends every body where it is). The warm tries again, then
  tells which (warm_engine.Engine.why_broken);
- nothing for `stall_timeout`: the upstream stalled.
"""

from __future__ import annotations

import hashlib

import requests

from ..model.settings import Settings, Upstream
from ..errors import DeadlineExceeded, DigestMismatch, DiskFull, RegistryAPIError, TransferBroken, WarmError
from ..host import diskspace, storage
from ..host.layout import Layout
from ..net.bounded import error_text
from ..net.registry_api import RegistryAPI
from ..render import human_size

READ_CHUNK = 1 << 20    # blob bytes read and hashed at a time: few Python steps per megabyte
REFUSED = ("the upstream sends content that does not match its digest (the mirror refused it "
           "and stored nothing)")


class ReadThrough:
    """Blob caching through fetch-once mirrors, one RegistryAPI per upstream's mirror."""

    def __init__(self, settings: Settings, layout: Layout, buckets: dict,
                 stall_timeout: float, auth: tuple[str, str] | None):
        self.settings, self.layout, self.buckets = settings, layout, buckets
        self.stall_timeout = stall_timeout
        # A mirror that sends nothing for stall_timeout has lost its upstream.
        self.readers = {u.key: RegistryAPI.of_mirror(u.endpoint, settings.tls_certificate, auth)
                        for u in settings.upstreams}
        for reader in self.readers.values():
            reader.timeout = stall_timeout

    def cache(self, upstream: Upstream, repository: str, digest: str, size: int, started=lambda: None) -> int:
        """Make the mirror cache one blob for `repository`; the bytes it fetched upstream.
        `started()` once the mirror's answer began."""
        backend = self.settings.storage.backend
        if upstream.key in self.buckets:
            bucket = self.buckets[upstream.key]
            if bucket.linked(repository, digest):
                return 0
            fetched = self.read(upstream, repository, digest, started)
            if not bucket.linked(repository, digest):
                raise WarmError(f"blob {repository}@{digest}: the mirror served it but did not store it in "
                                f"its {backend} storage (the mirror's log says why)")
            return fetched
        if backend != "filesystem":
            return self.read(upstream, repository, digest, started)
        storage_dir = self.layout.storage_dir(upstream)
        if storage.blob_linked(storage_dir, repository, digest):
            return 0
        if storage.blob_data(storage_dir, digest).is_file():
            # Stored for another repository: linked here, as distribution does on a
            # cross-repository mount, rather than fetched again (the engine keys by repository).
            storage.link_blob(storage_dir, repository, digest)
            return 0
        fetched = self.read(upstream, repository, digest, started)
        if storage.blob_linked(storage_dir, repository, digest):
            return fetched
        # Served whole but not stored: the engine logs a failed store and serves on.
        needed = size or fetched
        if (full := diskspace.no_room(storage_dir, needed)) is not None:
            raise DiskFull(f"blob {repository}@{digest}: disk full: the mirror could not store it "
                           f"({full}; the blob needs {human_size(needed)})", needed=needed)
        raise WarmError(f"blob {repository}@{digest}: the mirror served it but did not store it "
                        "(the mirror's log says why)")

    def read(self, upstream: Upstream, repository: str, digest: str, started=lambda: None) -> int:
        """Read the blob through the mirror to its end, checking its sha256; its size (see the
        module's docstring for what an early end means)."""
        reader = self.readers[upstream.key]
        what = f"blob {repository}@{digest}"
        stalled = f"{what}: the mirror sent nothing for {self.stall_timeout:g} s after"
        try:
            answer = reader.request("GET", f"/v2/{repository}/blobs/{digest}",
                                    scope=f"repository:{repository}:pull", stream=True)
        except DeadlineExceeded:
            raise WarmError(f"{stalled} asking for it (upstream stalled or gone?)") from None
        started()
        watch = answer.watch
        hasher, got, broke = hashlib.sha256(), 0, False
        try:
            if answer.status_code != 200:
                raise RegistryAPIError(f"{what}: HTTP {answer.status_code} {error_text(answer, watch)}".rstrip(),
                                       answer.status_code)
            announced = answer.headers.get("Content-Length", "")
            try:
                for chunk in answer.iter_content(READ_CHUNK):
                    watch.extend()
                    hasher.update(chunk)
                    got += len(chunk)
            except requests.RequestException:
                # A read that breaks drops what it had gathered: what came over the wire counts.
                broke, got = True, answer.raw.tell()
        finally:
            answer.close()
        if watch.fired:
            raise WarmError(f"{stalled} {got} bytes (upstream stalled or gone?)")
        if broke and announced.isdigit() and got == int(announced) - 1:
            raise DigestMismatch(f"{what}: {REFUSED}")
        if broke:
            raise TransferBroken(f"{what}: transfer broke after {got} of {announced or '?'} bytes")
        if "sha256:" + hasher.hexdigest() != digest:
            raise DigestMismatch(f"{what}: content does not match its digest ({got} bytes received)")
        return got
