"""The warm engine: one run over many images, through their mirror ports.

For each image to keep warm, its manifest (and, for a multi-platform index,
the children of the chosen platforms), config blob and layers are pulled
through the image's mirror port, so the mirror caches them. The blobs of
every image go into one queue (services.blob_queue) as soon as the image's
manifest is read, biggest first, `concurrency` downloads at once: the link
to the upstream stays full until its last byte. A blob already in the
mirror's storage is not fetched again, and a blob shared by several images
is fetched once: never two requests for one blob at a time, or the proxy
would fetch it upstream twice.

How a blob is made to be cached depends on the engine the mirror runs:

- the engine built here with the fetch-once patch (`fetch_once`): each blob
  is read through the mirror to its end and its sha256 checked
  (services.read_through): the end of the body is the event that says
  "stored";
- any other distribution (a user-chosen registry:2 or registry:3): the
  proxy stores in the background after the response, so the storage is
  watched until the blob is there; with distribution 2.x (`hang_up`), which
  fetches twice, the client copy is hung up on.

With pull-through off the mirror is a plain registry: images are copied
into it from their upstreams instead, every platform, digests preserved.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..model.settings import Settings, Upstream
from ..errors import DigestMismatch, DiskFull, MirrorError, RegistryAPIError, TransferBroken, WarmError
from ..host import diskspace, storage
from ..host import credential
from ..host.layout import Layout
from ..model.manifests import Manifest, blobs_of, children_of, select_platforms
from ..model.targets import Target
from ..net import azure_blob, s3
from ..net.registry_api import RegistryAPI, upstream_answers
from ..render import human_size
from .blob_queue import BlobQueue, Task
from .read_through import REFUSED, ReadThrough

STALL_TIMEOUT = 15.0    # seconds a blob being stored may go without growing
FULL_AFTER = 1.0        # seconds without growth after which a full disk is checked for
SMALL_BLOB = 1 << 20    # a blob this small costs a request's latency more than link time
STARTING = 2            # requests to the mirror waiting for their answer at once (blob_queue says why)
BLOB_ATTEMPTS = 3       # tries of a blob whose transfer broke off (a replica gone, a connection reset)
RETRY_PAUSE = 0.5       # seconds before the second try, twice that before the third
EXPLAIN_MAX = 64 << 20  # bytes of a failed blob fetched again from the upstream to tell why it failed


@dataclass
class Result:
    reference: str
    upstream: str
    digest: str = ""
    fetched_bytes: int = 0
    cached_bytes: int = 0
    seconds: float = 0.0
    error: str = ""
    items: set[str] = field(default_factory=set)   # 'repository@digest' of manifests and blobs
    fresh: set[str] = field(default_factory=set)   # the items this run made the mirror cache
    disk_short: int = 0     # with a full disk: bytes of the blob that did not fit

    @property
    def ok(self) -> bool:
        return not self.error


class BlobGate:
    """One request per blob at a time, whichever repository asks.

    The blob queue already runs the tasks of one digest one after the other;
    this lock also holds for any other caller of the fetch methods. Two
    requests for one uncached digest make an unpatched proxy go upstream
    twice and store neither copy reliably.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.digest_locks: dict[tuple, threading.Lock] = {}

    def serialized(self, upstream: str, digest: str) -> threading.Lock:
        with self.lock:
            return self.digest_locks.setdefault((upstream, digest), threading.Lock())


class _Image:
    """One image of a pull-through run while its blobs are in the queue."""

    def __init__(self, target: Target):
        self.target = target
        self.result = Result(str(target.ref), target.upstream.registry)
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.pending = 1          # its blobs in the queue, plus its planning until that ends
        self.errors: list[tuple[int, BaseException]] = []   # (descriptor's position, error)
        self.top_manifests: set[str] = set()
        self.finished = threading.Event()


@dataclass
class Engine:
    """One warm run. `fetch_once`: the mirrors run the engine built here with the
    fetch-once patch (read each blob through: services.read_through). Else `hang_up`:
    ask a distribution 2.x mirror for each new blob and hang up, instead of
    reading it (see _fetch_through)."""

    settings: Settings
    log: callable = print
    platforms: set[str] | None = None
    concurrency: int = 4
    hang_up: bool = False
    fetch_once: bool = False
    stall_timeout: float = STALL_TIMEOUT
    gate: BlobGate = field(default_factory=BlobGate)

    def __post_init__(self):
        self.layout = Layout.of(self.settings)
        self.on_disk = self.settings.storage.backend == "filesystem"
        self.hang_up = self.hang_up and self.on_disk and not self.fetch_once
        # s3, azure: no file to wait for, but the bucket (container) says what is stored and linked.
        store = {"s3": s3.Bucket, "azure": azure_blob.Container}.get(self.settings.storage.backend)
        self.buckets = {u.key: store(self.settings.storage, u.key) for u in self.settings.upstreams} \
            if store else {}
        auth = credential.of(self.settings)  # the product's own user, behind htpasswd
        self.mirrors = {u.key: RegistryAPI.of_mirror(u.endpoint, self.settings.tls_certificate, auth)
                        for u in self.settings.upstreams}
        self.progress = None   # run()'s callback, called as each image finishes
        self.progress_lock = threading.Lock()
        self.upstreams = {u.key: RegistryAPI(u.remote_url, username=u.username, password=u.password)
                          for u in self.settings.upstreams}
        self.read_through = ReadThrough(self.settings, self.layout, self.buckets, self.stall_timeout, auth)

    def in_storage(self, upstream: Upstream, repository: str, digest: str) -> bool:
        """True when the mirror can serve the blob for this repository from its own storage."""
        if upstream.key in self.buckets:
            return self.buckets[upstream.key].linked(repository, digest)
        return self.on_disk and storage.blob_linked(self.layout.storage_dir(upstream), repository, digest)

    # -- pull-through on any other engine: ask the mirror, then watch its storage until the blob is there

    def _wait_stored(self, storage_dir: Path, repository: str, digest: str, size: int = 0) -> None:
        """Until the registry has stored and linked the blob; checks its sha256 then.

        distribution stores a proxied blob in the background and finishes after
        the response: a request for the same blob meanwhile (from another
        repository) would be served but never stored. Gives up when the
        upload stops growing for `stall_timeout` (the upstream went away), or
        sooner, with DiskFull, when it stalls and the storage's file system has
        less room than the rest of the blob needs (distribution gave up writing).
        """
        seen, last_change = -1, time.monotonic()
        while not storage.blob_linked(storage_dir, repository, digest):
            now_size = storage.uploads_size(storage_dir, repository)
            stalled = time.monotonic() - last_change
            if now_size != seen:
                seen, last_change = now_size, time.monotonic()
            elif stalled > min(FULL_AFTER, self.stall_timeout) and size and \
                    (full := diskspace.no_room(storage_dir, size - now_size)) is not None:
                raise DiskFull(f"blob {repository}@{digest}: disk full: the mirror stopped storing it "
                               f"({full}; the blob needs {human_size(size)})", needed=size)
            elif stalled > self.stall_timeout:
                raise WarmError(f"blob {repository}@{digest}: the mirror stopped storing it "
                                  f"(no progress for {self.stall_timeout:.0f} s; upstream gone?)")
            time.sleep(0.05)
        hasher = hashlib.sha256()
        with open(storage.blob_data(storage_dir, digest), "rb") as stored:
            for chunk in iter(lambda: stored.read(1 << 20), b""):
                hasher.update(chunk)
        if "sha256:" + hasher.hexdigest() != digest:
            raise DigestMismatch(f"blob {repository}@{digest}: the mirror stored content that does "
                                 "not match its digest")

    def _fetch_through(self, upstream: Upstream, repository: str, digest: str, size: int) -> int:
        """Make the mirror cache one blob for `repository`; the bytes it fetched upstream."""
        mirror = self.mirrors[upstream.key]
        if upstream.key in self.buckets:
            return self._fetch_into_bucket(upstream, repository, digest, size)
        if not self.on_disk:
            return mirror.fetch_blob(repository, digest)
        storage_dir = self.layout.storage_dir(upstream)
        with self.gate.serialized(upstream.key, digest):
            if storage.blob_linked(storage_dir, repository, digest):
                return 0
            if storage.blob_data(storage_dir, digest).is_file():
                # Cached for another repository: link it here, as distribution does
                # on a cross-repository mount, rather than fetch it again.
                storage.link_blob(storage_dir, repository, digest)
                return 0
            if self.hang_up:
                # distribution 2.x fetches a proxied blob twice, once to store it
                # and once for the client: hanging up leaves the one that stores.
                mirror.open_blob(repository, digest)
            else:
                mirror.fetch_blob(repository, digest)
            try:
                self._wait_stored(storage_dir, repository, digest, size)
            except DiskFull:
                raise
            except WarmError as err:
                # Such an engine stops storing, without a word to its client, for an upstream
                # that went and for content that fails its digest alike.
                raise self.why_broken(upstream, repository, digest, size, err) from None
            return size

    def _fetch_into_bucket(self, upstream: Upstream, repository: str, digest: str, size: int) -> int:
        """Stream the blob through the mirror, then wait for its object and link in the bucket.

        As on a filesystem, distribution stores a proxied blob in the background
        after the response, and not at all when the same digest is being fetched
        meanwhile: one request per digest at a time, each waited for.
        """
        bucket = self.buckets[upstream.key]
        with self.gate.serialized(upstream.key, digest):
            if bucket.linked(repository, digest):
                return 0
            fetched = self.mirrors[upstream.key].fetch_blob(repository, digest)
            # Its store copy runs beside the client's: done soon after, unless the upstream went.
            deadline = time.monotonic() + self.stall_timeout
            while not bucket.linked(repository, digest):
                if time.monotonic() > deadline:
                    raise WarmError(f"blob {repository}@{digest}: the mirror did not store it in its "
                                    f"{self.settings.storage.backend} storage within "
                                    f"{self.stall_timeout:.0f} s (upstream gone?)")
                time.sleep(0.1)
            stored = bucket.size(bucket.data_key(digest))
            if stored != fetched:
                raise DigestMismatch(f"blob {repository}@{digest}: the {self.settings.storage.backend} "
                                     f"storage holds {stored} bytes, "
                                     f"the blob has {fetched}")
            return fetched

    # -- pull-through: every image's blobs in one queue

    def _cache_blob(self, upstream: Upstream, repository: str, digest: str, size: int, started) -> int:
        """The queue's work for one blob: `started()` once its download began."""
        if self.fetch_once:
            return self._retried(upstream, repository, digest, size,
                                 lambda: self.read_through.cache(upstream, repository, digest, size, started))
        # The careful way waits for storage, not for an answer: nothing to stagger.
        started()
        return self._retried(upstream, repository, digest, size,
                             lambda: self._fetch_through(upstream, repository, digest, size))

    def _retried(self, upstream: Upstream, repository: str, digest: str, size: int, transfer):
        """`transfer()`, tried again when the body broke off, BLOB_ATTEMPTS times in all; then
        why it broke. A fetch-once engine goes on fetching when its client hangs up: the next
        try joins that fetch, and through HAProxy it reaches a replica that is up."""
        for attempt in range(1, BLOB_ATTEMPTS + 1):
            try:
                return transfer()
            except TransferBroken as err:
                if attempt == BLOB_ATTEMPTS:
                    raise self.why_broken(upstream, repository, digest, size, err) from None
                self.log(f"{err}: trying again (attempt {attempt + 1} of {BLOB_ATTEMPTS})")
                time.sleep(RETRY_PAUSE * attempt)

    def why_broken(self, upstream: Upstream, repository: str, digest: str, size: int,
                   failure: MirrorError) -> MirrorError:
        """Why a blob was not cached (its transfer broke, its store stopped): the upstream went, or
        it sends content that fails the digest. An upstream that still answers is asked for the
        blob itself, its sha256 checked here: one download more, and only after a failure, and
        only for a blob of EXPLAIN_MAX bytes at most (a big one's bytes cost more than the answer)."""
        if not upstream_answers(upstream.remote_url):
            return RegistryAPIError(f"{failure} (upstream {upstream.display_url} unreachable)")
        if size > EXPLAIN_MAX:
            return RegistryAPIError(f"{failure}; the upstream answers (not fetched again to tell why: "
                                    f"{human_size(size)}; the mirror's log says)")
        try:
            self.upstreams[upstream.key].fetch_blob(repository, digest)
        except DigestMismatch:
            return DigestMismatch(f"blob {repository}@{digest}: {REFUSED}")
        except MirrorError as err:
            return RegistryAPIError(f"{failure}; the upstream then failed too: {err}")
        return RegistryAPIError(f"{failure}; the upstream sends it whole now (a passing fault: "
                                "the next run fetches it)")

    def _plan(self, image: _Image, queue: BlobQueue) -> None:
        """Read the image's manifests through the mirror and queue the blobs the mirror lacks."""
        target, result = image.target, image.result
        upstream, repository = target.upstream, target.ref.repository
        try:
            mirror = self.mirrors[upstream.key]
            with queue.setting_up():
                top = mirror.get_manifest(repository, target.ref.reference)
            result.digest = top.digest
            manifests = [top]
            if top.is_index:
                manifests = []
                for child in select_platforms(top.json, self.platforms):
                    with queue.setting_up():
                        manifests.append(mirror.get_manifest(repository, child["digest"]))
                if not manifests:
                    raise WarmError(f"no manifest for platform(s) {', '.join(sorted(self.platforms or []))}")
            descriptors = {d["digest"]: d for m in manifests for d in blobs_of(m.json)}
            result.items = {f"{repository}@{d}" for d in [*descriptors, top.digest, *(m.digest for m in manifests)]}
            image.top_manifests = {f"{repository}@{m.digest}" for m in {top, *manifests}}
            for position, descriptor in enumerate(descriptors.values()):
                digest, size = descriptor["digest"], descriptor.get("size", 0)
                if self.in_storage(upstream, repository, digest):
                    with image.lock:
                        result.cached_bytes += size
                    continue
                with image.lock:
                    image.pending += 1
                task, mine = queue.submit((upstream.key, repository, digest), (upstream.key, digest), size,
                                          lambda started, d=digest, n=size:
                                          self._cache_blob(upstream, repository, d, n, started))
                task.add_done_callback(lambda t, p=position, n=size, m=mine: self._blob_done(image, t, p, n, m))
        except Exception as err:  # one image's failure (or surprise) must not stop the others
            with image.lock:
                image.errors.append((-1, err))
        finally:
            self._release(image)

    def _blob_done(self, image: _Image, task: Task, position: int, size: int, mine: bool) -> None:
        result = image.result
        with image.lock:
            if task.error is not None:
                image.errors.append((position, task.error))
            elif mine and task.value:
                result.fetched_bytes += task.value
                result.fresh.add(f"{task.key[1]}@{task.key[2]}")
            else:
                result.cached_bytes += size
        self._release(image)

    def _release(self, image: _Image) -> None:
        """One of the image's blobs (or its planning) ended; the last one ends the image."""
        with image.lock:
            image.pending -= 1
            if image.pending:
                return
        result = image.result
        try:
            if image.errors:
                self._fail(image.target, result, min(image.errors, key=lambda e: e[0])[1])
            elif result.fresh:
                result.fresh |= image.top_manifests
            self._finish(result, image.start)
        finally:
            image.finished.set()   # whatever the log or the progress callback did: run() must not hang

    def _fail(self, target: Target, result: Result, err: BaseException) -> None:
        if isinstance(err, DiskFull):
            result.error, result.disk_short = str(err), max(err.needed, 1)
        elif isinstance(err, MirrorError):
            result.error = self._explain(target, err)
        else:
            result.error = f"{err.__class__.__name__}: {err}"

    def _finish(self, result: Result, start: float) -> None:
        result.seconds = time.monotonic() - start
        if result.ok:
            self.log(f"{result.reference}: ok {result.digest[:19]} fetched {human_size(result.fetched_bytes)}"
                     f", cached {human_size(result.cached_bytes)} in {result.seconds:.1f} s")
        else:
            self.log(f"{result.reference}: FAILED: {result.error}")
        if self.progress:
            with self.progress_lock:
                self.progress(result)

    # -- plain registry: copy from the upstream into the mirror

    def _copy_blob(self, target: Target, descriptor: dict, result: Result) -> None:
        repository, digest = target.ref.repository, descriptor["digest"]
        mirror, upstream = self.mirrors[target.upstream.key], self.upstreams[target.upstream.key]
        if mirror.blob_exists(repository, digest):
            result.cached_bytes += descriptor.get("size", 0)
            return
        with tempfile.TemporaryFile() as spool:
            def download() -> int:
                spool.seek(0)
                spool.truncate()
                return upstream.fetch_blob(repository, digest, sink=spool.write)
            size = self._retried(target.upstream, repository, digest, descriptor.get("size", 0), download)
            spool.seek(0)
            mirror.upload_blob(repository, digest, spool)
        result.fetched_bytes += size

    def _copy_manifest(self, target: Target, manifest: Manifest, reference: str, result: Result) -> None:
        mirror, upstream = self.mirrors[target.upstream.key], self.upstreams[target.upstream.key]
        if manifest.is_index:
            # A registry accepts an index only when every child is there: copy all platforms.
            for child in children_of(manifest.json):
                child_manifest = upstream.get_manifest(target.ref.repository, child["digest"])
                self._copy_manifest(target, child_manifest, child["digest"], result)
        else:
            for descriptor in blobs_of(manifest.json):
                self._copy_blob(target, descriptor, result)
        mirror.put_manifest(target.ref.repository, reference, manifest)

    def _copy(self, target: Target, result: Result) -> None:
        upstream = self.upstreams[target.upstream.key]
        top = upstream.get_manifest(target.ref.repository, target.ref.reference)
        result.digest = top.digest
        self._copy_manifest(target, top, target.ref.reference, result)

    def _explain(self, target: Target, err: MirrorError) -> str:
        """What went wrong, in the user's terms. Through a pull-through mirror an upstream
        that is away looks like the mirror's own answer (404 MANIFEST_UNKNOWN for an
        image it never cached, 500 for a blob): asked directly, the upstream says which."""
        if self.settings.pull_through and isinstance(err, RegistryAPIError) \
                and err.status in (404, 500, 502, 503, 504) \
                and not upstream_answers(target.upstream.remote_url):
            return f"upstream {target.upstream.display_url} unreachable, and the mirror has no copy ({err})"
        return str(err)

    def _copy_one(self, target: Target) -> Result:
        result = Result(str(target.ref), target.upstream.registry)
        start = time.monotonic()
        try:
            self._copy(target, result)
        except Exception as err:  # one image's failure (or surprise) must not stop the others
            self._fail(target, result, err)
        self._finish(result, start)
        return result

    def run(self, wanted: list[Target], progress=None) -> list[Result]:
        """Warm `wanted`; `progress(result)` is called as each image finishes."""
        self.progress = progress
        if not self.settings.pull_through:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="image") as pool:
                return list(pool.map(self._copy_one, wanted))
        images = [_Image(target) for target in wanted]
        # A quarter of the download slots are the small blobs'.
        queue = BlobQueue(self.concurrency, starting=STARTING, small=SMALL_BLOB, reserve=self.concurrency // 4)
        try:
            # Manifests `concurrency` at a time; each image's blobs are queued as soon as it is read.
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="manifest") as planners:
                for image in images:
                    planners.submit(self._plan, image, queue)
            for image in images:
                image.finished.wait()
        finally:
            queue.close()
        if queue.callback_errors:
            raise queue.callback_errors[0]
        return [image.result for image in images]
