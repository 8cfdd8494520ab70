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
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..model.settings import Settings
from ..engine import containers, request_logs
from ..engine.registry_image import ensure_registry_image
from ..errors import DockerError, StoreError
from ..host import diskspace, locks, ports, usage
from ..host import layout as host_layout
from ..host import storage as storage_tree
from ..host.layout import Layout
from ..model import digests, log_cursor, retention
from ..model.manifests import blobs_of, stored_problem
from ..model.retention import SYSTEM_CLOCK, CachedImage, Clock, Plan
from ..net.probes import wait_until_answering
from ..render import human_size
from . import cache_store

# One access-log line (gorilla's combined format) of a manifest pulled, behind Docker's timestamp.
_PULL = re.compile(
    r'^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<frac>\d{1,9}))?Z \S+ \S+ \S+ \[[^\]]*\] '
    r'"(?:GET|HEAD) /v2/(?P<name>[a-z0-9][^ ?]*?)/manifests/(?P<ref>[^ ?/]+)(?:\?\S*)? HTTP/[0-9.]+" '
    r'2\d\d (?:\S+ "(?:[^"\\]|\\.)*" "(?P<agent>(?:[^"\\]|\\.)*)")?')

# The product's own requests (net.registry_api.USER_AGENT: warm, refresh, archive; net.probes),
# and a docker pull the product asks of an engine whose client says so (dockerd sends
# "UpstreamClient(<its client's agent>)"): never a client's use of an image.
_OWN_AGENT = re.compile(r'(?:^|UpstreamClient\\?\()docker-mirror\b')


def is_own_agent(agent: str | None) -> bool:
    return bool(agent) and _OWN_AGENT.search(agent) is not None


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
    """(Docker timestamp in ns, repository, tag or digest) of a client's manifest pull, else
    None: other lines, and the product's own pulls (warm, refresh, archive), which are no use."""
    found = _PULL.match(line)
    if not found or is_own_agent(found["agent"]):
        return None
    seconds = calendar.timegm(time.strptime(found["ts"], "%Y-%m-%dT%H:%M:%S"))
    return seconds * 10**9 + int((found["frac"] or "0").ljust(9, "0")), found["name"], found["ref"]


def _warn(message: str) -> None:
    print(message, file=sys.stderr)   # stdout may be status's JSON


def ingest(settings: Settings, client, clock: Clock = SYSTEM_CLOCK, log=_warn, stores: dict | None = None
           ) -> dict[str, int]:
    """Record the pulls each mirror's log holds since the last call; {upstream key: pulls new}.

    Idempotent: a cursor per upstream (the last log time read) counts each
    line once, across calls, restarts and re-created containers. A tag
    pulled counts for the digest it points at when read. A cursor ahead of
    the clock (a fast clock set back) is said, and the whole log read again
    (model.log_cursor); a pull stamped ahead of the clock counts as now, once.

    `stores`: {upstream key: its store}, all opened here when None; a store missing from it is
    not read (one that does not answer): a tag pulled is then noted as the tag only.
    """
    root = Layout.of(settings).root
    if client is None or not root.is_dir():   # status must not create a purged directory
        return {}
    counts = {}
    with usage.locked(root):
        for upstream in settings.upstreams:
            record = usage.read_usage(root, upstream.key)
            what = f"{upstream.registry} request log"
            now_ns = clock.real_ns()
            reading = log_cursor.Reading.begin(record.cursor_ns, record.ahead_ns, now_ns, what)
            # Every replica's log, merged in time order (one container without replicas).
            text = request_logs.request_log(client, settings, upstream, reading.begun.since_ns // 10**9)
            if text is None:
                if reading.begun.warning:
                    log(reading.begun.warning)
                continue
            saved = (record.cursor_ns, list(record.ahead_ns))
            # Last uses recorded while the clock was fast: now, so they keep N days from now, not
            # N days plus however fast the clock was.
            now = clock.now()
            future = [key for key, when in record.used.items()
                      if when > now + log_cursor.SLACK_NS / log_cursor.SECOND]
            for key in future:
                record.used[key] = now
            if future:
                log(f"warning: {len(future)} last use(s) of the {upstream.registry} mirror were ahead of "
                    "the clock (the host clock was fast): counted as now")
            store = cache_store.open_store(settings, upstream) if stores is None else stores.get(upstream.key)
            tag_links: dict[str, dict[str, str]] = {}
            new = 0
            for line in text.decode(errors="replace").splitlines():
                pulled = parse_pull(line)
                if pulled is None or not reading.take(pulled[0]):
                    continue
                stamp, repository, reference = pulled
                when = clock.at(min(stamp, now_ns) / 1e9)
                new += 1
                if digests.is_digest(reference):
                    record.note(f"{repository}@{reference}", when)
                    continue
                record.note(f"{repository}:{reference}", when)
                if repository not in tag_links and store is None:
                    tag_links[repository] = {}
                elif repository not in tag_links:
                    try:
                        tag_links[repository] = store.tags(repository)
                    except StoreError:   # an object store away: the tag's use is noted all the same
                        tag_links[repository] = {}
                links = tag_links[repository]
                if reference in links:
                    record.note(f"{repository}@{links[reference]}", when)
            for warning in reading.warnings(what):
                log(warning)
            record.cursor_ns, record.ahead_ns = reading.cursor_ns, reading.ahead()
            if new or future or (record.cursor_ns, record.ahead_ns) != saved:
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

    A digest that falls off beyond K is recorded as left behind (`retired`,
    with the time): unless a client pulls it after that, the next collection
    drops it. Images no longer wanted lose their pins and age out by last
    use; one that failed this time keeps the digests it had. Times are the
    host clock's, as log stamps and file times are (read through Clock.at).
    """
    root = Layout.of(settings).root
    done = {r.reference: r.digest for r in results if r.ok and digests.is_digest(r.digest)}
    keep = 1 + settings.lifecycle.keep_previous
    now = time.time()
    # Past this age a retirement decides nothing: unused that long, an image goes anyway.
    horizon = now - settings.lifecycle.keep_unused_days * retention.DAY
    with usage.locked(root):
        old = usage.read_pins(root)
        pins = {}
        for target in wanted:
            ref = str(target.ref)
            entry = old.get(ref, {})
            history = [d for d in entry.get("digests", []) if digests.is_digest(d)]
            retired = entry.get("retired") if isinstance(entry.get("retired"), dict) else {}
            retired = {d: float(t) for d, t in retired.items()
                       if digests.is_digest(d) and isinstance(t, (int, float)) and horizon <= t <= now}
            if ref in done:
                history = [done[ref], *(d for d in history if d != done[ref])]
            for digest in history[keep:]:
                retired.setdefault(digest, now)
            for digest in history[:keep]:
                retired.pop(digest, None)   # the tag came back to it
            if history or retired:
                pins[ref] = {"upstream": target.upstream.key, "repository": target.ref.repository,
                             "digests": history[:keep], "retired": retired}
        usage.write_pins(root, pins)


def _pinned(settings: Settings) -> set[tuple[str, str, str]]:
    keep = 1 + settings.lifecycle.keep_previous
    return {(entry.get("upstream"), entry.get("repository"), digest)
            for entry in usage.read_pins(Layout.of(settings).root).values()
            for digest in entry["digests"][:keep]}


def _retired(settings: Settings, clock: Clock) -> dict[tuple[str, str, str], float]:
    """(upstream, repository, digest) -> when a moving tag left that digest behind (product time)."""
    found = {}
    for entry in usage.read_pins(Layout.of(settings).root).values():
        retired = entry.get("retired")
        for digest, when in (retired.items() if isinstance(retired, dict) else ()):
            if isinstance(when, (int, float)):
                key = (entry.get("upstream"), entry.get("repository"), digest)
                found[key] = max(found.get(key, 0.0), clock.at(float(when)))
    return found


@dataclass(frozen=True)
class Damaged:
    """An entry of the store nothing can use: skipped by every reader, removed by the next
    collection (distribution answers 500 for it, and its garbage-collect stops at it)."""
    upstream: str
    repository: str
    kind: str           # "manifest" (its content), or a link file: "tag", "revision", "layer"
    name: str           # the digest, or the tag
    reason: str
    link: storage_tree.DamagedLink | None = None

    def describe(self) -> str:
        if self.link is not None:
            return self.link.describe()
        return f"{self.repository}@{self.name} (manifest): {self.reason}"

    def to_json(self) -> dict:
        return {"repository": self.repository, "kind": self.kind, "name": self.name, "reason": self.reason,
                "removed": "at the next collection"}


def _still_damaged(store, damaged: Damaged) -> bool:
    """Read again with the registry stopped: distribution writes a link file in place, so a
    reader may have caught one half-written."""
    if damaged.link is None:
        return stored_problem(store.read_manifest(damaged.name)) is not None
    return any((link.kind, link.name) == (damaged.kind, damaged.name)
               for link in storage_tree.damaged_links(store.storage_dir, damaged.repository))


@dataclass
class Survey:
    images: list[CachedImage] = field(default_factory=list)
    sizes: dict[tuple[str, str], int] = field(default_factory=dict)
    damaged: list[Damaged] = field(default_factory=list)


def survey(settings: Settings, clock: Clock = SYSTEM_CLOCK, stores: dict | None = None,
           log=_warn, upstreams=None) -> Survey:
    """Every image the mirrors' storage holds, the size of every blob they name, and the
    entries that are damaged (skipped: one bad entry never stops the rest).

    `stores`: {upstream key: its store (mirror.services.cache_store)}, opened here when absent;
    `upstreams`: those to survey (all when None). A StoreError when a store stops answering."""
    found = Survey()
    context = _Context(_pinned(settings), _retired(settings, clock), clock, clock.now())
    for upstream in settings.upstreams if upstreams is None else upstreams:
        store = (stores or {}).get(upstream.key) or cache_store.open_store(settings, upstream)
        _survey_store(settings, upstream, store, context, found)
    if context.clock_wrong:
        log(f"warning: {context.clock_wrong} image(s) have a last use or a retirement ahead of the clock "
            "(the host clock was fast and was set back): counted as used now, none dropped for it")
    return found


@dataclass
class _Context:
    """What every store's survey reads alike: pins, retirements, the time now."""
    pinned: set
    retired_at: dict
    clock: Clock
    now: float
    clock_wrong: int = 0


def _survey_store(settings: Settings, upstream, store, context: _Context, found: Survey) -> None:
    local = isinstance(store, cache_store.FileStore)
    used = usage.read_usage(Layout.of(settings).root, upstream.key).used
    for repository in store.repositories():
        links = storage_tree.damaged_links(store.storage_dir, repository) if local else []
        found.damaged += [Damaged(upstream.key, repository, link.kind, link.name, link.reason, link)
                          for link in links]
        bad = {link.name for link in links if link.kind == "revision"}
        parsed = _manifests(upstream, store, repository, bad, found)
        children = {c["digest"] for m in parsed.values() for c in m.get("manifests", [])}
        tags = store.tags(repository)
        moved = _left_behind_by_tags(store, repository, tags, parsed, settings.lifecycle.keep_previous)
        for digest in parsed:
            own_tags = tuple(sorted(t for t, d in tags.items() if d == digest))
            if digest in children and not own_tags:
                continue  # a platform manifest: part of its index's image
            found.images.append(_image(upstream.key, store, repository, digest, own_tags, parsed, used,
                                       moved, context, found.sizes))


def _manifests(upstream, store, repository: str, bad: set[str], found: Survey) -> dict[str, dict]:
    """digest -> the parsed manifest, of the repository's revisions that read whole."""
    parsed = {}
    for digest in store.revisions(repository):
        if digest in bad:
            continue
        body = store.read_manifest(digest)
        problem = stored_problem(body)
        if problem:
            found.damaged.append(Damaged(upstream.key, repository, "manifest", digest, problem))
            continue
        parsed[digest] = json.loads(body)
    return parsed


def _image(key: str, store, repository: str, digest: str, own_tags: tuple, parsed: dict, used: dict,
           moved: dict, context: _Context, sizes: dict) -> CachedImage:
    """One image: its manifests, its blobs (sizes noted), its last use and retirement."""
    manifests = [digest, *(c["digest"] for c in parsed[digest].get("manifests", []) if c["digest"] in parsed)]
    blobs = set(manifests)
    for manifest in manifests:
        blobs |= {b["digest"] for b in blobs_of(parsed[manifest])}
    blobs = {b for b in blobs if digests.is_digest(b)}
    for blob in blobs:
        if (key, blob) not in sizes:
            sizes[key, blob] = store.blob_size(blob)
    last = max([used.get(f"{repository}@{m}", 0.0) for m in manifests]
               + [used.get(f"{repository}:{t}", 0.0) for t in own_tags])
    if not last:  # never seen pulled by a client: count from when it was cached
        cached = store.cached_since(repository, digest)
        last = context.now if cached is None else context.clock.at(cached)
    retired = context.retired_at.get((key, repository, digest))
    if retired is None and not own_tags and digest in moved:
        retired = context.clock.at(moved[digest])
    last, retired, wrong = retention.sane_times(last, retired, context.now)
    context.clock_wrong += bool(wrong)
    return CachedImage(key, repository, digest, own_tags, tuple(manifests), frozenset(blobs), last,
                       (key, repository, digest) in context.pinned, retired)


def _left_behind_by_tags(store, repository: str, tags: dict[str, str], parsed: dict, keep: int
                         ) -> dict[str, float]:
    """digest -> when (host clock) a tag moved on from it, for the digests a tag left behind
    beyond the `keep` before its current one, as the store's tag history says: images pulled
    ad hoc have no pins. A digest was left behind when the next one the tag took was cached."""
    found: dict[str, float] = {}
    for tag, current in tags.items():
        history = [d for d in store.tag_history(repository, tag) if d in parsed and d != current]
        if len(history) <= keep:
            continue
        cached = {d: store.cached_since(repository, d) for d in [current, *history]}
        if any(when is None for when in cached.values()):
            continue   # no order to go by: last use alone decides
        newest_first = sorted(history, key=lambda d: cached[d], reverse=True)
        for digest in newest_first[keep:]:
            after = [when for d, when in cached.items() if when > cached[digest]]
            if after:
                found[digest] = max(found.get(digest, 0.0), min(after))
    return found


def inventory(settings: Settings, clock: Clock = SYSTEM_CLOCK, stores: dict | None = None
              ) -> tuple[list[CachedImage], dict[tuple[str, str], int]]:
    """Every image the mirrors' storage holds, and the size of every blob they name."""
    found = survey(settings, clock, stores)
    return found.images, found.sizes


@dataclass
class Collection:
    plan: Plan
    dry_run: bool
    unavailable: dict[str, float] = field(default_factory=dict)   # upstream key -> seconds stopped
    damaged: list = field(default_factory=list)     # Damaged entries (removed unless a dry run)
    disk_before: dict[str, int] = field(default_factory=dict)     # du of each storage collected
    disk_after: dict[str, int] = field(default_factory=dict)


def _iso(when: float | None) -> str | None:
    return None if when is None else \
        datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds")


def collect(settings: Settings, client, *, dry_run: bool = False, clock: Clock = SYSTEM_CLOCK,
            must_free: int = 0, log=print) -> Collection:
    """Apply the policy: drop what it says, and collect the blobs nobody names any more.

    Once per storage, on every backend: on s3 and azure the links go from the
    bucket or container and garbage-collect runs against the same store, every
    replica stopped meanwhile (mirror.services.cache_store)."""
    stores = {u.key: cache_store.open_store(settings, u) for u in settings.upstreams}
    ingest(settings, client, clock, log=log, stores=stores)
    found = survey(settings, clock, stores, log=log)
    images, sizes = found.images, found.sizes
    plan = retention.plan(images, sizes, settings.lifecycle, clock.now(), must_free)
    done = Collection(plan, dry_run, damaged=found.damaged)
    _report(settings, done, len(images), log)
    if not dry_run and cache_store.is_object_store(settings):
        # The registries' own upload purger is off on object stores (registry-config.yml.j2);
        # uploads untouched for a week are abandoned, and go with the registries serving.
        for store in stores.values():
            store.purge_uploads(older_than=time.time() - cache_store.UPLOAD_AGE)
    if dry_run or not (plan.evictions or found.damaged):
        return done
    if client is None:
        raise DockerError("garbage collection runs distribution's garbage-collect in a container: "
                          "the Docker engine must answer")
    layout = Layout.of(settings)
    image = ensure_registry_image(client, settings.registry_image, log=log)
    dropped = {e.image for e in plan.evictions}
    for upstream in settings.upstreams:
        mine = [i for i in dropped if i.upstream == upstream.key]
        broken = [d for d in found.damaged if d.upstream == upstream.key]
        if mine or broken:
            kept = {(i.repository, m) for i in images if i.upstream == upstream.key and i not in dropped
                    for m in i.manifests}
            _collect_one(settings, client, layout, image, upstream, stores[upstream.key], mine, broken,
                         kept, done, log)
    # Totals for the metrics (docker_mirror_collections_total, ...): a counter never goes back.
    usage.note_collection(layout.root, len(plan.evictions),
                          sum(done.disk_before[k] - done.disk_after[k] for k in done.disk_after), clock.now())
    return done


def _report(settings: Settings, done: Collection, surveyed: int, log) -> None:
    """Say what the collection drops (or would), and why."""
    plan, dry_run = done.plan, done.dry_run
    registries = {u.key: u.registry for u in settings.upstreams}
    for eviction in plan.evictions:
        log(f"{'would drop' if dry_run else 'dropping'} {registries[eviction.image.upstream]}/"
            f"{eviction.image.name}: {eviction.reason}; frees {human_size(eviction.freed)}")
    log(f"garbage collection{' (dry run)' if dry_run else ''}: {len(plan.evictions)} of {surveyed} "
        f"image(s) to drop, {human_size(plan.freed)} to free; cache {human_size(plan.bytes_before)} -> "
        f"{human_size(plan.bytes_after)}" + (f" (limit {human_size(settings.lifecycle.max_bytes)})"
                                            if settings.lifecycle.max_bytes else ""))
    if plan.over_limit:
        log("warning: the pinned images alone are over DOCKER_MIRROR_CACHE_MAX_SIZE_GB; nothing "
            "more may be dropped")
    for damaged in done.damaged:
        log(f"damaged: {registries[damaged.upstream]}/{damaged.describe()}; "
            f"{'would be removed' if dry_run else 'removing it'}")


def _collect_one(settings: Settings, client, layout: Layout, image, upstream, store, mine: list,
                 broken: list, kept: set, done: Collection, log) -> None:
    """One storage: its mirror stopped, the dropped manifests' and damaged entries' links go,
    then garbage-collect; `kept`: (repository, manifest) still named by a kept image."""
    spec = containers.maintenance_plan(settings, layout, image, upstream, ports.free_loopback_endpoint(),
                                       host_layout.http_secret(layout))
    state = containers.mirror_container(client, settings, upstream).state
    running = state == "running"
    done.disk_before[upstream.key] = store.usage()
    started = time.monotonic()
    try:
        # Stopped whatever its state, and with no container the setup lock held: neither a
        # restart policy nor the keeper may start a registry on this storage mid-sweep.
        with containers.stopped(client, settings, upstream) if state not in ("absent", "unknown") \
                else locks.held(layout.setup_lock):
            store.forget()   # a tag may have moved since the survey: its links are read afresh
            for cached in mine:
                for manifest in cached.manifests:
                    if (cached.repository, manifest) not in kept:
                        store.remove_manifest(cached.repository, manifest)
            _remove_damaged(store, broken)
            # First, as it may be what fills the disk: the registry cannot be writing now.
            # On object stores the registries' own purger is off (registry-config.yml.j2).
            store.purge_uploads()
            containers.run_once(client, image, spec, ["garbage-collect", image.config_path],
                                network=cache_store.is_object_store(settings),
                                limits=settings.resources.collect)
            store.tidy()
    finally:
        if running:
            wait_until_answering(upstream.endpoint, containers.START_TIMEOUT)
    done.unavailable[upstream.key] = time.monotonic() - started
    store.forget()
    done.disk_after[upstream.key] = store.usage()
    log(f"{upstream.registry}: collected in {done.unavailable[upstream.key]:.2f} s (the mirror did "
        f"not serve meanwhile); disk {human_size(done.disk_before[upstream.key])} -> "
        f"{human_size(done.disk_after[upstream.key])}")


def _remove_damaged(store, broken: list) -> None:
    """Before garbage-collect, which stops at the first manifest it cannot read."""
    for damaged in broken:
        if not _still_damaged(store, damaged):
            continue   # read mid-write while the registry served: whole now
        if damaged.link is not None:
            storage_tree.remove_damaged(store.storage_dir, damaged.link)
        else:
            store.remove_manifest(damaged.repository, damaged.name)


def image_rows(settings: Settings, client, clock: Clock = SYSTEM_CLOCK) -> dict[str, list[dict]]:
    """Per upstream key, each cached image: size, pinned, last pulled, when the policy drops it.

    A StoreError when an object store does not answer."""
    found = survey_rows(settings, client, clock)
    if found.failed:
        raise StoreError(next(iter(found.failed.values())))
    return found.rows


@dataclass
class StatusSurvey:
    """What status shows of the stores, per upstream key (JSON-ready)."""
    rows: dict[str, list[dict]]       # image_rows()
    damaged: dict[str, list[dict]]    # its store's damaged entries
    failed: dict[str, str]            # its store stopped answering mid-survey: why


def survey_rows(settings: Settings, client, clock: Clock = SYSTEM_CLOCK, stores: dict | None = None,
                upstreams=None) -> StatusSurvey:
    """image_rows(), the damaged entries, and the stores that failed, of `upstreams` (all when
    None): each store is surveyed on its own, so one that fails hides none of the others'
    images (the policy's plan then counts the others only)."""
    upstreams = settings.upstreams if upstreams is None else upstreams
    stores = {u.key: cache_store.open_store(settings, u) for u in upstreams} if stores is None else stores
    ingest(settings, client, clock, stores=stores)
    found, failed = Survey(), {}
    for upstream in upstreams:
        try:
            one = survey(settings, clock, stores, upstreams=[upstream])
        except StoreError as err:
            failed[upstream.key] = str(err)
            continue
        found.images += one.images
        found.sizes.update(one.sizes)
        found.damaged += one.damaged
    damaged: dict[str, list[dict]] = {u.key: [] for u in settings.upstreams}
    for entry in found.damaged:
        damaged[entry.upstream].append(entry.to_json())
    return StatusSurvey(_rows(settings, found, clock), damaged, failed)


def _rows(settings: Settings, found: Survey, clock: Clock) -> dict[str, list[dict]]:
    images, sizes, policy = found.images, found.sizes, settings.lifecycle
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
