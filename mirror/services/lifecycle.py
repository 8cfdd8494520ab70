"""The cache's lifecycle: last use, pins, and garbage collection (`make docker-mirror-gc`).

- `ingest()` reads each mirror container's request log (the registry's
  access log on stdout, kept by Docker's json-file driver) from a cursor,
  and records when each manifest was last pulled. The log is the source
  because it is there whatever pulled and whenever: pulls served while no
  process of ours ran are still in it (up to the 3 x 10m cap), and it needs
  no change to the registry (notifications would need an endpoint that is up
  at the time of the pull, or the events are lost). It must be read before a
  container is re-created: its log goes with it.
- `record_pins()` keeps, per image to keep warm, its current digest and the
  K before it (the refresh calls it).
- `collect()` drops what the policy (model.retention) says: the manifests'
  links go from the storage tree, then distribution's own garbage-collect
  (mark and sweep) deletes the blobs no remaining manifest names, with the
  mirror stopped meanwhile: a pull then fails cleanly (connection refused),
  never with a half-deleted blob.

The registry's own expiry no longer deletes anything: the mirrors run with
storage deletes off (2.x: its fixed 7-day expiry then fails harmlessly) or
`proxy.ttl: 0s` (3.x).
"""

from __future__ import annotations

import calendar
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..model.settings import Settings
from ..engine import containers, request_logs
from ..engine.registry_image import ensure_registry_image
from ..errors import DockerError
from ..host import layout as host_layout
from ..host import diskspace, locks, ports, storage, usage
from ..host.layout import Layout
from ..model import digests, retention
from ..model.manifests import blobs_of
from ..model.retention import SYSTEM_CLOCK, CachedImage, Clock, Plan
from ..net.probes import wait_until_answering
from ..render import human_size

# One access-log line (gorilla's combined format) of a manifest pulled, behind Docker's timestamp.
_PULL = re.compile(
    r'^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<frac>\d{1,9}))?Z \S+ \S+ \S+ \[[^\]]*\] '
    r'"(?:GET|HEAD) /v2/(?P<name>[a-z0-9][^ ?]*?)/manifests/(?P<ref>[^ ?/]+)(?:\?\S*)? HTTP/[0-9.]+" '
    r'2\d\d ')


# One access-log line of a blob served (GET, 2xx), with the bytes it sent: the traffic
# metrics (mirror.services.observe) count hits, misses and bytes served from these.
_BLOB_GET = re.compile(
    r'^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<frac>\d{1,9}))?Z \S+ \S+ \S+ \[[^\]]*\] '
    r'"GET /v2/(?P<name>[a-z0-9][^ ?]*?)/blobs/(?P<digest>sha256:[0-9a-f]{64})(?:\?\S*)? HTTP/[0-9.]+" '
    r'2\d\d (?P<size>\d+|-) ')


def _stamp_ns(found: re.Match) -> int:
    seconds = calendar.timegm(time.strptime(found["ts"], "%Y-%m-%dT%H:%M:%S"))
    return seconds * 10**9 + int((found["frac"] or "0").ljust(9, "0"))


def parse_blob_get(line: str) -> tuple[int, str, str, int] | None:
    """(Docker timestamp in ns, repository, digest, bytes sent) of a blob served, else None."""
    found = _BLOB_GET.match(line)
    if not found:
        return None
    return _stamp_ns(found), found["name"], found["digest"], int(found["size"].replace("-", "0"))


def parse_pull(line: str) -> tuple[int, str, str] | None:
    """(Docker timestamp in ns, repository, tag or digest) of a manifest pull line, else None."""
    found = _PULL.match(line)
    if not found:
        return None
    seconds = calendar.timegm(time.strptime(found["ts"], "%Y-%m-%dT%H:%M:%S"))
    return seconds * 10**9 + int((found["frac"] or "0").ljust(9, "0")), found["name"], found["ref"]


def ingest(settings: Settings, client, clock: Clock = SYSTEM_CLOCK) -> dict[str, int]:
    """Record the pulls each mirror's log holds since the last call; {upstream key: pulls new}.

    Idempotent: a cursor per upstream (the last log time read) counts each
    line once, across calls, restarts and re-created containers. A tag
    pulled counts for the digest it points at when read.
    """
    root = Layout.of(settings).root
    if client is None or not root.is_dir():   # status must not create a purged directory
        return {}
    counts = {}
    with usage.locked(root):
        for upstream in settings.upstreams:
            record = usage.read_usage(root, upstream.key)
            # Every replica's log, merged in time order (one container without replicas).
            text = request_logs.request_log(client, settings, upstream, record.cursor_ns // 10**9)
            if text is None:
                continue
            local = settings.storage.backend == "filesystem"
            storage_dir = Layout.of(settings).storage_dir(upstream)
            tag_links: dict[str, dict[str, str]] = {}
            new = 0
            for line in text.decode(errors="replace").splitlines():
                pulled = parse_pull(line)
                if pulled is None or pulled[0] <= record.cursor_ns:
                    continue
                stamp, repository, reference = pulled
                record.cursor_ns = stamp
                when = clock.at(stamp / 1e9)
                new += 1
                if digests.is_digest(reference):
                    record.note(f"{repository}@{reference}", when)
                    continue
                record.note(f"{repository}:{reference}", when)
                if local:
                    links = tag_links.setdefault(repository, storage.tags(storage_dir, repository))
                    if reference in links:
                        record.note(f"{repository}@{links[reference]}", when)
            if new:
                try:
                    usage.write_usage(root, upstream.key, record)
                except OSError as err:
                    if not diskspace.is_disk_full(err):
                        raise
                    # The cursor stays where it was: the next call reads these pulls again.
            counts[upstream.key] = new
    return counts


def record_pins(settings: Settings, wanted, results) -> None:
    """After a warm: each image to keep warm pins its digest now and the K before it.

    Images no longer wanted lose their pins and age out by last use; one
    that failed this time keeps the digests it had.
    """
    root = Layout.of(settings).root
    done = {r.reference: r.digest for r in results if r.ok and digests.is_digest(r.digest)}
    keep = 1 + settings.lifecycle.keep_previous
    with usage.locked(root):
        old = usage.read_pins(root)
        pins = {}
        for target in wanted:
            ref = str(target.ref)
            history = [d for d in old.get(ref, {}).get("digests", []) if digests.is_digest(d)]
            if ref in done:
                history = [done[ref], *(d for d in history if d != done[ref])]
            if history:
                pins[ref] = {"upstream": target.upstream.key, "repository": target.ref.repository,
                             "digests": history[:keep]}
        usage.write_pins(root, pins)


def _pinned(settings: Settings) -> set[tuple[str, str, str]]:
    keep = 1 + settings.lifecycle.keep_previous
    return {(entry.get("upstream"), entry.get("repository"), digest)
            for entry in usage.read_pins(Layout.of(settings).root).values()
            for digest in entry["digests"][:keep]}


def _json(body: bytes | None) -> dict:
    try:
        found = json.loads(body or b"{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def inventory(settings: Settings, clock: Clock = SYSTEM_CLOCK
              ) -> tuple[list[CachedImage], dict[tuple[str, str], int]]:
    """Every image the mirrors' storage holds, and the size of every blob they name."""
    layout, pinned = Layout.of(settings), _pinned(settings)
    images, sizes = [], {}
    for upstream in settings.upstreams:
        storage_dir = layout.storage_dir(upstream)
        used = usage.read_usage(layout.root, upstream.key).used
        for repository in storage.repositories(storage_dir):
            revisions = storage.revisions(storage_dir, repository)
            parsed = {d: _json(storage.read_manifest(storage_dir, d)) for d in revisions}
            children = {c.get("digest") for m in parsed.values() for c in m.get("manifests", [])
                        if isinstance(c, dict)}
            tags = storage.tags(storage_dir, repository)
            for digest in revisions:
                own_tags = tuple(sorted(t for t, d in tags.items() if d == digest))
                if digest in children and not own_tags:
                    continue  # a platform manifest: part of its index's image
                manifests = [digest, *(c.get("digest") for c in parsed[digest].get("manifests", [])
                                       if isinstance(c, dict) and c.get("digest") in parsed)]
                blobs = set(manifests)
                for manifest in manifests:
                    blobs |= {b.get("digest") for b in blobs_of(parsed[manifest]) if isinstance(b, dict)}
                blobs = {b for b in blobs if digests.is_digest(b)}
                for blob in blobs:
                    if (upstream.key, blob) not in sizes:
                        sizes[upstream.key, blob] = storage.blob_size(storage_dir, blob)
                last = max([used.get(f"{repository}@{m}", 0.0) for m in manifests]
                           + [used.get(f"{repository}:{t}", 0.0) for t in own_tags])
                if not last:  # never seen pulled: count from when it was cached
                    try:
                        last = clock.at(storage.StorageTree(storage_dir).revision_link(
                            repository, digest).stat().st_mtime)
                    except OSError:
                        last = clock.now()
                images.append(CachedImage(upstream.key, repository, digest, own_tags, tuple(manifests),
                                          frozenset(blobs), last, (upstream.key, repository, digest) in pinned))
    return images, sizes


@dataclass
class Collection:
    plan: Plan
    dry_run: bool
    unavailable: dict[str, float] = field(default_factory=dict)   # upstream key -> seconds stopped
    disk_before: dict[str, int] = field(default_factory=dict)     # du of each storage collected
    disk_after: dict[str, int] = field(default_factory=dict)


def _iso(when: float | None) -> str | None:
    return None if when is None else \
        datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds")


def collect(settings: Settings, client, *, dry_run: bool = False, clock: Clock = SYSTEM_CLOCK,
            must_free: int = 0, log=print) -> Collection:
    """Apply the policy: drop what it says, and collect the blobs nobody names any more."""
    if settings.storage.backend != "filesystem":
        log(f"garbage collection: {settings.storage.backend} storage is not managed here")
        return Collection(Plan(), dry_run)
    ingest(settings, client, clock)
    images, sizes = inventory(settings, clock)
    plan = retention.plan(images, sizes, settings.lifecycle, clock.now(), must_free)
    done = Collection(plan, dry_run)
    registries = {u.key: u.registry for u in settings.upstreams}
    for eviction in plan.evictions:
        log(f"{'would drop' if dry_run else 'dropping'} {registries[eviction.image.upstream]}/"
            f"{eviction.image.name}: {eviction.reason}; frees {human_size(eviction.freed)}")
    log(f"garbage collection{' (dry run)' if dry_run else ''}: {len(plan.evictions)} of {len(images)} "
        f"image(s) to drop, {human_size(plan.freed)} to free; cache {human_size(plan.bytes_before)} -> "
        f"{human_size(plan.bytes_after)}" + (f" (limit {human_size(settings.lifecycle.max_bytes)})"
                                            if settings.lifecycle.max_bytes else ""))
    if plan.over_limit:
        log("warning: the pinned images alone are over DOCKER_MIRROR_CACHE_MAX_SIZE_GB; nothing "
            "more may be dropped")
    if dry_run or not plan.evictions:
        return done
    if client is None:
        raise DockerError("garbage collection runs distribution's garbage-collect in a container: "
                          "the Docker engine must answer")
    layout = Layout.of(settings)
    image = ensure_registry_image(client, settings.registry_image, log=log)
    dropped = {e.image for e in plan.evictions}
    for upstream in settings.upstreams:
        mine = [i for i in dropped if i.upstream == upstream.key]
        if not mine:
            continue
        storage_dir = layout.storage_dir(upstream)
        kept = {(i.repository, m) for i in images if i.upstream == upstream.key and i not in dropped
                for m in i.manifests}
        spec = containers.maintenance_plan(settings, layout, image, upstream, ports.free_loopback_endpoint(),
                                           host_layout.http_secret(layout))
        state = containers.mirror_container(client, settings, upstream).state
        running = state == "running"
        done.disk_before[upstream.key] = storage.disk_usage(storage_dir)
        started = time.monotonic()
        try:
            # Stopped whatever its state, and with no container the setup lock held: neither a
            # restart policy nor the keeper may start a registry on this storage mid-sweep.
            with containers.stopped(client, settings, upstream) if state not in ("absent", "unknown") \
                    else locks.held(layout.setup_lock):
                for cached in mine:
                    for manifest in cached.manifests:
                        if (cached.repository, manifest) not in kept:
                            storage.remove_manifest(storage_dir, cached.repository, manifest)
                # First, as it may be what fills the disk: the registry cannot be writing now.
                storage.purge_uploads(storage_dir)
                containers.run_once(client, image, spec, ["garbage-collect", image.config_path])
                storage.tidy(storage_dir)
        finally:
            if running:
                wait_until_answering(upstream.endpoint, containers.START_TIMEOUT)
        done.unavailable[upstream.key] = time.monotonic() - started
        done.disk_after[upstream.key] = storage.disk_usage(storage_dir)
        log(f"{upstream.registry}: collected in {done.unavailable[upstream.key]:.2f} s (the mirror did "
            f"not serve meanwhile); disk {human_size(done.disk_before[upstream.key])} -> "
            f"{human_size(done.disk_after[upstream.key])}")
    # Totals for the metrics (docker_mirror_collections_total, ...): a counter never goes back.
    usage.note_collection(layout.root, len(plan.evictions),
                          sum(done.disk_before[k] - done.disk_after[k] for k in done.disk_after), clock.now())
    return done


def image_rows(settings: Settings, client, clock: Clock = SYSTEM_CLOCK) -> dict[str, list[dict]]:
    """Per upstream key, each cached image: size, pinned, last pulled, when the policy drops it."""
    if settings.storage.backend != "filesystem":
        return {}
    ingest(settings, client, clock)
    images, sizes = inventory(settings, clock)
    policy = settings.lifecycle
    now_plan = {e.image: e.reason for e in retention.plan(images, sizes, policy, clock.now()).evictions}
    rows: dict[str, list[dict]] = {u.key: [] for u in settings.upstreams}
    for image in sorted(images, key=lambda i: (i.repository, i.tags, i.digest)):
        rows[image.upstream].append({
            "repository": image.repository, "tags": list(image.tags), "digest": image.digest,
            "bytes": sum(sizes.get((image.upstream, b), 0) for b in image.blobs),
            "pinned": image.pinned, "last_pulled": _iso(image.last_pulled),
            "drops": "at the next collection" if image in now_plan else _iso(retention.drop_time(image, policy)),
            "drop_reason": now_plan.get(image),
        })
    return rows
