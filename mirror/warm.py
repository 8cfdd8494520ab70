"""The cache-warming engine behind `make docker-mirror-pull` and the refresh.

For each image to keep warm, its manifest (and, for a multi-platform index,
the children of the chosen platforms), config blob and layers are pulled
through the image's mirror port, so the mirror caches them. Blobs are
streamed, checked against their digest, and discarded: the mirror keeps the
copy. A blob already in the mirror's storage is not fetched again, and a
blob shared by several images is fetched once: never two requests for one
blob at a time, or the proxy would fetch it upstream twice.

With pull-through off the mirror is a plain registry: images are copied
into it from their upstreams instead, every platform, digests preserved.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from . import images
from . import layout as L
from . import pinning, render, storage
from .errors import MirrorError
from .fsutil import atomic_write
from .regapi import DigestMismatch, Manifest, RegistryAPI
from .probes import probe_host
from .registry import wait_until_answering
from .settings import Settings, Upstream

IMAGE_TIMEOUT = 3600.0  # seconds one image may take, all its blobs included
STALL_TIMEOUT = 15.0    # seconds a blob being stored may go without growing


class ImageListError(MirrorError):
    exit_code = 2


@dataclass(frozen=True)
class Target:
    ref: images.ImageRef
    upstream: Upstream
    source: str            # where it was listed: Kconfig symbol, file:line, --scan


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

    @property
    def ok(self) -> bool:
        return not self.error


def host_platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)
    return f"linux/{arch}"


def read_list_file(path: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(reference, 'file:line') pairs and error lines; '#' starts a comment."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        return [], [f"{path}: cannot read the image list ({err.strerror})"]
    found, errors = [], []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            images.parse(text)
            found.append((text, f"{path}:{number}"))
        except images.InvalidReference as err:
            errors.append(f"{path}:{number}: {err}")
    return found, errors


def targets(settings: Settings, listed: list[tuple[str, str]]) -> tuple[list[Target], list[str]]:
    """Normalised, deduplicated targets; references of unmirrored registries are errors."""
    by_registry = {u.registry: u for u in settings.upstreams}
    seen: dict[str, Target] = {}
    errors = []
    for reference, source in listed:
        ref = images.parse(reference)
        upstream = by_registry.get(ref.registry)
        if upstream is None:
            errors.append(f"{source}: {reference}: registry {ref.registry} is not mirrored "
                          f"(mirrored: {', '.join(by_registry)}); enable it in 'make menuconfig'")
            continue
        seen.setdefault(str(ref), Target(ref, upstream, source))
    return list(seen.values()), errors


def wanted_images(settings: Settings, extra: list[tuple[str, str]] = ()) -> tuple[list[Target], list[str]]:
    listed = [(ref, "Kconfig") for ref in settings.warm_images]
    errors: list[str] = []
    if settings.extra_image_list:
        found, errors = read_list_file(settings.extra_image_list)
        listed += found
    found_targets, target_errors = targets(settings, [*listed, *extra])
    return found_targets, errors + target_errors


def select_platforms(index: dict, platforms: set[str] | None) -> list[dict]:
    """Children of an index for `platforms` (None: all); attestation manifests skipped."""
    chosen = []
    for child in index.get("manifests", []):
        plat = child.get("platform") or {}
        if plat.get("os") == "unknown":  # buildkit attestations, not runnable images
            continue
        name = f"{plat.get('os', '')}/{plat.get('architecture', '')}"
        if platforms is None or name in platforms or \
                f"{name}/{plat.get('variant', '')}".rstrip("/") in platforms:
            chosen.append(child)
    return chosen


def blobs_of(manifest: dict) -> list[dict]:
    return [manifest["config"], *manifest.get("layers", [])] if "config" in manifest else \
        list(manifest.get("layers", []))


class BlobGate:
    """One fetch per blob and repository in a run, and one request per blob at a time.

    The proxy serves a blob to a repository only once it is linked there, so
    a blob shared by two repositories is fetched through each; but never
    concurrently, since two requests for one uncached digest make the proxy
    go upstream twice and store neither copy reliably.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.futures: dict[tuple, Future] = {}
        self.digest_locks: dict[tuple, threading.Lock] = {}

    def once(self, key: tuple, pool: ThreadPoolExecutor, fetch) -> tuple[Future, bool]:
        """The future of the one fetch for `key`, and whether this call started it."""
        with self.lock:
            if key in self.futures:
                return self.futures[key], False
            future = pool.submit(fetch)
            self.futures[key] = future
            return future, True

    def serialized(self, upstream: str, digest: str) -> threading.Lock:
        with self.lock:
            return self.digest_locks.setdefault((upstream, digest), threading.Lock())


@dataclass
class Engine:
    """One warm run. `hang_up`: ask a distribution 2.x mirror for each new blob
    and hang up, instead of reading it (see _fetch_through)."""

    settings: Settings
    log: callable = print
    platforms: set[str] | None = None
    concurrency: int = 4
    hang_up: bool = False
    stall_timeout: float = STALL_TIMEOUT
    gate: BlobGate = field(default_factory=BlobGate)

    def __post_init__(self):
        self.layout = L.Layout.of(self.settings)
        self.on_disk = self.settings.storage.backend == "filesystem"
        self.hang_up = self.hang_up and self.on_disk
        self.blob_pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="blob")
        self.mirrors = {u.key: RegistryAPI(L.mirror_url(self.settings, u),
                                           verify=self.settings.tls_certificate or True)
                        for u in self.settings.upstreams}
        self.upstreams = {u.key: RegistryAPI(u.remote_url, username=u.username, password=u.password)
                          for u in self.settings.upstreams}

    def in_storage(self, upstream: Upstream, repository: str, digest: str) -> bool:
        """True when the mirror can serve the blob for this repository from its own disk."""
        return self.on_disk and storage.blob_linked(self.layout.storage_dir(upstream), repository, digest)

    # -- pull-through: fetch through the mirror, which keeps the copy

    def _wait_stored(self, storage_dir: Path, repository: str, digest: str) -> None:
        """Until the registry has stored and linked the blob; checks its sha256 then.

        distribution stores a proxied blob in the background and finishes after
        the response: a request for the same blob meanwhile (from another
        repository) would be served but never stored. Gives up when the
        upload stops growing for `stall_timeout` (the upstream went away).
        """
        size, last_change = -1, time.monotonic()
        while not storage.blob_linked(storage_dir, repository, digest):
            now_size = storage.uploads_size(storage_dir, repository)
            if now_size != size:
                size, last_change = now_size, time.monotonic()
            elif time.monotonic() - last_change > self.stall_timeout:
                raise MirrorError(f"blob {repository}@{digest}: the mirror stopped storing it "
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
            self._wait_stored(storage_dir, repository, digest)
            return size

    def _warm_blob(self, target: Target, descriptor: dict, result: Result, lock: threading.Lock):
        upstream, repository, digest = target.upstream, target.ref.repository, descriptor["digest"]
        if self.in_storage(upstream, repository, digest):
            with lock:
                result.cached_bytes += descriptor.get("size", 0)
            return
        future, mine = self.gate.once(
            (upstream.key, repository, digest), self.blob_pool,
            lambda: self._fetch_through(upstream, repository, digest, descriptor.get("size", 0)))
        fetched = future.result(timeout=IMAGE_TIMEOUT)
        with lock:
            if mine and fetched:
                result.fetched_bytes += fetched
                result.fresh.add(f"{repository}@{digest}")
            else:
                result.cached_bytes += descriptor.get("size", 0)

    def _warm_through(self, target: Target, result: Result) -> None:
        mirror = self.mirrors[target.upstream.key]
        top = mirror.get_manifest(target.ref.repository, target.ref.reference)
        result.digest = top.digest
        manifests = [top]
        if top.is_index:
            manifests = [mirror.get_manifest(target.ref.repository, child["digest"])
                         for child in select_platforms(top.json, self.platforms)]
            if not manifests:
                raise MirrorError(f"no manifest for platform(s) {', '.join(sorted(self.platforms or []))}")
        lock = threading.Lock()
        descriptors = {d["digest"]: d for m in manifests for d in blobs_of(m.json)}
        repository = target.ref.repository
        result.items = {f"{repository}@{d}" for d in [*descriptors, top.digest, *(m.digest for m in manifests)]}
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="image-blobs") as waiters:
            for waiter in [waiters.submit(self._warm_blob, target, d, result, lock)
                           for d in descriptors.values()]:
                waiter.result()
        if result.fresh:
            result.fresh |= {f"{repository}@{m.digest}" for m in {top, *manifests}}

    # -- plain registry: copy from the upstream into the mirror

    def _copy_blob(self, target: Target, descriptor: dict, result: Result) -> None:
        repository, digest = target.ref.repository, descriptor["digest"]
        mirror, upstream = self.mirrors[target.upstream.key], self.upstreams[target.upstream.key]
        if mirror.blob_exists(repository, digest):
            result.cached_bytes += descriptor.get("size", 0)
            return
        with tempfile.TemporaryFile() as spool:
            size = upstream.fetch_blob(repository, digest, sink=spool.write)
            spool.seek(0)
            mirror.upload_blob(repository, digest, spool)
        result.fetched_bytes += size

    def _copy_manifest(self, target: Target, manifest: Manifest, reference: str, result: Result) -> None:
        mirror, upstream = self.mirrors[target.upstream.key], self.upstreams[target.upstream.key]
        if manifest.is_index:
            # A registry accepts an index only when every child is there: copy all platforms.
            for child in manifest.json.get("manifests", []):
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

    def warm_one(self, target: Target) -> Result:
        result = Result(str(target.ref), target.upstream.registry)
        start = time.monotonic()
        try:
            if self.settings.pull_through:
                self._warm_through(target, result)
            else:
                self._copy(target, result)
        except MirrorError as err:
            result.error = str(err)
        except Exception as err:  # one image's surprise must not stop the others
            result.error = f"{err.__class__.__name__}: {err}"
        result.seconds = time.monotonic() - start
        if result.ok:
            self.log(f"{result.reference}: ok {result.digest[:19]} fetched {human(result.fetched_bytes)}"
                     f", cached {human(result.cached_bytes)} in {result.seconds:.1f} s")
        else:
            self.log(f"{result.reference}: FAILED: {result.error}")
        return result

    def run(self, wanted: list[Target], progress=None) -> list[Result]:
        """Warm `wanted`; `progress(result)` is called as each image finishes."""
        def one(target: Target) -> Result:
            result = self.warm_one(target)
            if progress:
                progress(result)
            return result
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="image") as pool:
                return list(pool.map(one, wanted))
        finally:
            self.blob_pool.shutdown(wait=True)


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def write_manifest(layout: L.Layout, results: list[Result]) -> None:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entries = [dict(reference=r.reference, digest=r.digest, upstream=r.upstream,
                    size=r.fetched_bytes + r.cached_bytes, time=now) for r in results if r.ok]
    atomic_write(layout.manifest, render.render("manifest.txt.j2", entries=entries))


def summary(results: list[Result], errors: list[str]) -> str:
    rows = [dict(image=r.reference, digest=r.digest[:19] or "-", fetched=human(r.fetched_bytes),
                 cached=human(r.cached_bytes), seconds=f"{r.seconds:.1f}",
                 result="ok" if r.ok else "FAILED") for r in results]
    return render.render("warm-summary.txt.j2", rows=rows, errors=errors,
                         failed=[r for r in results if not r.ok])


def runs_distribution_2(settings: Settings, client) -> bool:
    """True when every mirror container says it runs distribution 2.x."""
    if client is None:
        return False
    for upstream in settings.upstreams:
        try:
            labels = client.containers.get(L.container_name(settings, upstream)).labels
        except Exception:  # absent or engine trouble: assume nothing
            return False
        if labels.get(L.LABEL_MAJOR) != "2":
            return False
    return True


def pin_warm_images(settings: Settings, client, results: list[Result], log=print) -> None:
    """Exempt what was warmed from the proxy's 7-day expiry (see mirror.pinning)."""
    if not settings.pull_through or settings.storage.backend != "filesystem" or client is None:
        return
    layout = L.Layout.of(settings)
    for upstream in settings.upstreams:
        mine = [r for r in results if r.ok and r.upstream == upstream.registry]
        if not mine:
            continue
        container = client.containers.get(L.container_name(settings, upstream))
        if container.labels.get(L.LABEL_MODE) != L.PULL_THROUGH:
            continue
        host = probe_host(settings.bind_address)
        pinning.pin(container, layout.storage_dir(upstream),
                    pins=set().union(*(r.items for r in mine)), fresh=set().union(*(r.fresh for r in mine)),
                    wait_until_answering=lambda: wait_until_answering(
                        host, upstream.port, tls=bool(settings.tls_certificate)), log=log)


def warm(settings: Settings, log=print, client=None, extra: list[tuple[str, str]] = (),
         extra_errors: list[str] = ()) -> list[str]:
    """Warm every image to keep, and `extra` (reference, source) pairs.

    Returns what failed: images, and bad list lines (with `extra_errors`,
    those of lists read by the caller).
    """
    wanted, errors = wanted_images(settings, extra)
    errors = [*extra_errors, *errors]
    for error in errors:
        log(f"skipped: {error}")
    platforms = None if settings.pull_all_platforms else {host_platform()}
    engine = Engine(settings, log=log, platforms=platforms, concurrency=settings.pull_concurrency,
                    hang_up=runs_distribution_2(settings, client))
    log(f"warming {len(wanted)} image(s), {settings.pull_concurrency} at a time")
    # A bar for a person at a terminal; logs and the journal get the lines alone.
    with tqdm(total=len(wanted), unit="image", file=sys.stderr, disable=not sys.stderr.isatty(),
              dynamic_ncols=True) as bar:
        fetched = [0]

        def advance(result: Result) -> None:
            fetched[0] += result.fetched_bytes
            bar.set_postfix_str(f"{human(fetched[0])} fetched", refresh=False)
            bar.update(1)
        results = engine.run(wanted, progress=advance)
    write_manifest(engine.layout, results)
    pin_warm_images(settings, client, results, log=log)
    for line in summary(results, errors).splitlines():
        log(line)
    return [r.reference for r in results if not r.ok] + errors
