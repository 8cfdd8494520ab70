"""What the mirror is worth, as Prometheus metrics (`python3 -m mirror observe`, /metrics).

- `sample()` reads each mirror's request log from a cursor of its own (the
  lines are parsed by mirror.services.lifecycle, the one parser of that log),
  counts hits, misses and bytes (mirror.model.traffic), keeps the totals under
  `observe/traffic-<upstream>.json` and appends a sample to
  `observe/history.json`, which the status page plots.
- `MirrorCollector` turns the status document, those totals, the Docker Hub
  headroom and each registry's own `registry_http_*` metrics (from its
  loopback debug listener, re-labelled with the upstream) into metric
  families for prometheus_client: one scrape target per host.
- `write_textfile()` writes the same for node_exporter's textfile collector.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from ..model.settings import Settings, Upstream
from ..engine import request_logs
from ..host import files, locks, usage
from ..host.layout import Layout
from ..host.storage import StorageTree
from ..model import registry_layout
from ..model import traffic as model
from ..net import headroom as hub_headroom
from ..net.registry_api import upstream_answers
from . import lifecycle, status

TEXTFILE_NAME = "docker_mirror.prom"
SCRAPE_TIMEOUT = 2.0   # seconds for a registry's debug listener to answer /metrics


def observe_dir(settings: Settings) -> Path:
    return Layout.of(settings).root / "observe"


def _traffic_path(settings: Settings, key: str) -> Path:
    return observe_dir(settings) / f"traffic-{key}.json"


def _history_path(settings: Settings) -> Path:
    return observe_dir(settings) / "history.json"


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def read_traffic(settings: Settings, key: str) -> model.Traffic:
    data = _read_json(_traffic_path(settings, key), {})
    return model.Traffic.from_json(data if isinstance(data, dict) else {})


def read_history(settings: Settings) -> list[dict]:
    data = _read_json(_history_path(settings), [])
    return [s for s in data if isinstance(s, dict) and isinstance(s.get("t"), (int, float))] \
        if isinstance(data, list) else []


def _stored_blobs(tree: StorageTree) -> dict[str, int]:
    """digest -> size of every blob the cache holds now."""
    found = {}
    for data in tree.v2.glob(f"{registry_layout.BLOBS}/*/*/*/data"):
        digest = registry_layout.blob_of(data.relative_to(tree.v2).as_posix())   # None: not a blob's data
        if digest is None:
            continue
        try:
            found[digest] = data.stat().st_size
        except OSError:
            continue
    return found


def _stored(tree: StorageTree, digest: str) -> tuple[int, float] | None:
    try:
        info = tree.blob_data(digest).stat()
    except (OSError, ValueError):
        return None
    return info.st_size, info.st_mtime


def _count(settings: Settings, upstream: Upstream, client, now: float) -> model.Traffic:
    record = read_traffic(settings, upstream.key)
    tree = StorageTree(Layout.of(settings).storage_dir(upstream))
    first = not record.sampled
    if first:
        # Counting starts now: what the cache already holds was fetched before, and is a hit.
        record.seen = _stored_blobs(tree) if settings.storage.backend == "filesystem" else {}
        record.sampled = now
    try:
        # Every replica's log, merged in time order (one container without replicas).
        text = request_logs.request_log(client, settings, upstream, record.cursor_ns // 10**9) \
            if client else None
    except Exception:   # noqa: BLE001 - no engine, or the container went between find and read: nothing new
        text = b""
    if text is not None:
        for line in text.decode(errors="replace").splitlines():
            served = lifecycle.parse_blob_get(line)
            if served is None or served[0] <= record.cursor_ns:
                continue
            stamp, _, digest, sent = served
            record.cursor_ns = stamp
            if first:
                continue    # served before counting started: whether it was a hit is not known
            local = settings.storage.backend == "filesystem"
            record.count(digest, sent, _stored(tree, digest) if local else None, record.sampled)
    record.sampled = now
    return record


def sample(settings: Settings, client, now: float | None = None) -> dict[str, model.Traffic]:
    """Count what each mirror served since the last sample; save the totals and a history sample."""
    now = time.time() if now is None else now
    folder = observe_dir(settings)
    with locks.held(folder / ".observe.lock"):
        counted = {u.key: _count(settings, u, client, now) for u in settings.upstreams}
        for key, record in counted.items():
            files.atomic_write(_traffic_path(settings, key), json.dumps(record.to_json()))
        totals = {k: sum(getattr(r, k) for r in counted.values())
                  for k in ("hits", "misses", "served_bytes", "upstream_bytes")}
        point = {"t": now, **totals, "saved_bytes": totals["served_bytes"] - totals["upstream_bytes"],
                 "hit_ratio": model.hit_ratio(totals["hits"], totals["misses"])}
        history = model.add_sample(read_history(settings), point)
        files.atomic_write(_history_path(settings), json.dumps(history))
    return counted


def registry_families(upstream: Upstream, timeout: float = SCRAPE_TIMEOUT) -> list[Metric]:
    """The registry's own registry_* metrics from its debug listener, labelled with the upstream."""
    try:
        answer = requests.get(f"http://{upstream.endpoint.debug_listen}/metrics", timeout=timeout)
        answer.raise_for_status()
    except requests.RequestException:
        return []
    families = []
    for family in text_string_to_metric_families(answer.text):
        if not family.name.startswith("registry_"):
            continue    # Go runtime figures of the registry process: not the mirror's business
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        copy.samples = [s._replace(labels={**s.labels, "upstream": upstream.key}) for s in family.samples]
        families.append(copy)
    return families


class Probes:
    """Upstream reachability and Docker Hub headroom, asked at most every `ttl` seconds; and
    what the stores hold (`stores`, read at most as often: status.StoresCache)."""

    def __init__(self, settings: Settings, ttl: float):
        self.settings, self.ttl = settings, ttl
        self.stores = status.StoresCache(ttl)
        self.when = 0.0
        self.reachable: dict[str, bool] = {}
        self.headroom: model.Headroom | None = None

    def refresh(self, force: bool = False) -> "Probes":
        if force or time.monotonic() - self.when >= self.ttl:
            self.reachable = {u.key: upstream_answers(u.remote_url) for u in self.settings.upstreams}
            hub = self.settings.upstream("dockerhub")
            self.headroom = hub_headroom.headroom(hub) if hub else None
            self.when = time.monotonic()
        return self


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class MirrorCollector:
    """Every metric of one host's mirrors, built afresh at each scrape."""

    def __init__(self, settings: Settings, client_factory, probes: Probes):
        self.settings, self.client_factory, self.probes = settings, client_factory, probes

    def collect(self):
        settings, probes = self.settings, self.probes.refresh()
        client = self.client_factory()
        doc = status.gather(settings, client, headroom=False, stores=probes.stores)
        up = GaugeMetricFamily("docker_mirror_up", "1 when the mirror answers /v2/", labels=["upstream"])
        mode = GaugeMetricFamily("docker_mirror_mode", "1 for the mode the mirror runs in "
                                 "(pull-through, offline, registry)", labels=["upstream", "mode"])
        reach = GaugeMetricFamily("docker_mirror_upstream_reachable",
                                  "1 when the upstream registry answers /v2/", labels=["upstream"])
        cache = GaugeMetricFamily("docker_mirror_cache_bytes", "bytes on disk per upstream", labels=["upstream"])
        pinned = GaugeMetricFamily("docker_mirror_pinned_bytes", "bytes of pinned images", labels=["upstream"])
        images = GaugeMetricFamily("docker_mirror_images", "images (manifests) cached", labels=["upstream"])
        damaged = GaugeMetricFamily("docker_mirror_damaged_entries", "entries of the store nothing can use "
                                    "(skipped; the next collection removes them)", labels=["upstream"])
        tags = GaugeMetricFamily("docker_mirror_tags", "tags cached", labels=["upstream"])
        image_bytes = GaugeMetricFamily("docker_mirror_image_bytes", "bytes of one cached image",
                                        labels=["upstream", "repository", "digest", "pinned"])
        last_pulled = GaugeMetricFamily("docker_mirror_image_last_pulled_timestamp_seconds",
                                        "when an image was last pulled", labels=["upstream", "repository", "digest"])
        for u in doc["upstreams"]:
            key = u["key"]
            up.add_metric([key], 1 if u["answering"] else 0)
            if u["container"]["mode"]:
                mode.add_metric([key, u["container"]["mode"]], 1)
            reach.add_metric([key], 1 if probes.reachable.get(key) else 0)
            cache.add_metric([key], u["disk_bytes"])
            pinned.add_metric([key], sum(i["bytes"] for i in u["images"] if i["pinned"]))
            images.add_metric([key], len(u["images"]))
            damaged.add_metric([key], len(u.get("damaged", [])))
            tags.add_metric([key], u["tags"])
            for i in u["images"]:
                image_bytes.add_metric([key, i["repository"], i["digest"], str(bool(i["pinned"])).lower()],
                                       i["bytes"])
                when = _ts(i["last_pulled"])
                if when is not None:
                    last_pulled.add_metric([key, i["repository"], i["digest"]], when)
        yield from (up, mode, reach, cache, pinned, images, damaged, tags, image_bytes, last_pulled)
        yield from self._traffic()
        yield from self._refresh(doc["refresh"]["last"])
        yield from self._collections()
        if probes.headroom is not None and probes.headroom.remaining is not None:
            yield GaugeMetricFamily("docker_mirror_dockerhub_ratelimit_limit",
                                    "pulls Docker Hub allows in its window", value=probes.headroom.limit)
            yield GaugeMetricFamily("docker_mirror_dockerhub_ratelimit_remaining",
                                    "pulls left in Docker Hub's window (a manifest HEAD does not count)",
                                    value=probes.headroom.remaining)
        for upstream in settings.upstreams:
            yield from registry_families(upstream)

    def _traffic(self):
        requests_ = CounterMetricFamily("docker_mirror_blob_requests", "blobs served, by whether the cache "
                                        "held them (hit) or fetched them upstream (miss)",
                                        labels=["upstream", "result"])
        served = CounterMetricFamily("docker_mirror_served_bytes", "bytes of blobs served to clients",
                                     labels=["upstream"])
        fetched = CounterMetricFamily("docker_mirror_upstream_bytes", "bytes of blobs fetched from the upstream",
                                      labels=["upstream"])
        saved = GaugeMetricFamily("docker_mirror_saved_bytes", "bytes served minus bytes fetched upstream",
                                  labels=["upstream"])
        for upstream in self.settings.upstreams:
            record = read_traffic(self.settings, upstream.key)
            requests_.add_metric([upstream.key, "hit"], record.hits)
            requests_.add_metric([upstream.key, "miss"], record.misses)
            served.add_metric([upstream.key], record.served_bytes)
            fetched.add_metric([upstream.key], record.upstream_bytes)
            saved.add_metric([upstream.key], record.saved_bytes)
        yield from (requests_, served, fetched, saved)

    def _collections(self):
        totals = usage.read_collections(Layout.of(self.settings).root)
        yield CounterMetricFamily("docker_mirror_collections", "garbage collections that dropped images",
                                  value=totals["collections"])
        yield CounterMetricFamily("docker_mirror_evicted_images", "images the cache policy dropped",
                                  value=totals["evictions"])
        yield CounterMetricFamily("docker_mirror_collected_bytes", "disk the collections freed",
                                  value=totals["freed_bytes"])
        if totals["last"]:
            yield GaugeMetricFamily("docker_mirror_last_collection_timestamp_seconds",
                                    "when a collection last dropped images", value=totals["last"])

    def _refresh(self, last: dict | None):
        if not last:
            return
        started, finished = _ts(last.get("started")), _ts(last.get("finished"))
        if finished is not None:
            yield GaugeMetricFamily("docker_mirror_last_refresh_timestamp_seconds",
                                    "when the last refresh finished", value=finished)
        if started is not None and finished is not None:
            yield GaugeMetricFamily("docker_mirror_last_refresh_duration_seconds",
                                    "how long the last refresh took", value=finished - started)
        yield GaugeMetricFamily("docker_mirror_last_refresh_success", "1 when the last refresh succeeded",
                                value=1 if last.get("result") == "ok" else 0)
        failed = set(last.get("failed") or [])
        per_image = GaugeMetricFamily("docker_mirror_image_refresh_success",
                                      "1 when the last refresh warmed the image", labels=["image"])
        for ref in self.settings.warm_images:
            per_image.add_metric([ref], 0 if ref in failed else 1)
        yield per_image


def registry(settings: Settings, client_factory, probes: Probes) -> CollectorRegistry:
    """A registry holding only the mirror's collector (no metrics of this Python process)."""
    found = CollectorRegistry(auto_describe=False)
    found.register(MirrorCollector(settings, client_factory, probes))
    return found


def exposition(collectors: CollectorRegistry) -> bytes:
    return generate_latest(collectors)


def write_textfile(settings: Settings, collectors: CollectorRegistry) -> Path | None:
    """The metrics for node_exporter's textfile collector, atomically; None when not configured."""
    if not settings.observe.textfile_dir:
        return None
    return files.atomic_write(Path(settings.observe.textfile_dir) / TEXTFILE_NAME, exposition(collectors))
