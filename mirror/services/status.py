"""What the mirror holds and whether it answers (`make docker-mirror-status`,
check_docker_mirror.sh).

`gather()` collects one JSON-ready document from the Docker engine, the
storage tree, the mirror ports and the refresh record; `format_text()` and
`exit_code()` only read that document. No secret (passwords, account keys,
the http secret, credentials inside a URL) ever enters it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from .. import render
from ..model.settings import Settings, Upstream
from ..engine import containers, replicas
from ..engine import owners
from ..errors import DockerError, StoreError, UnknownCheck
from ..host import locks, storage, systemd, tls
from ..host.layout import Layout
from ..model import images
from ..model.retention import SYSTEM_CLOCK, Clock
from ..model.traffic import Headroom
from ..net import headroom as hub_headroom
from ..net.probes import answers
from . import cache_store, client_status, lifecycle, ownership

LAST_REFRESH_KEYS = ("started", "finished", "result", "log", "failed")
CHECKS = ("DOCKER_MIRROR_URL", "DOCKER_MIRROR_EXISTS", "DOCKER_MIRROR_DIR", "IMAGE_EXISTS")


# ---------------------------------------------------------------- parts of the document

def _container(client, settings: Settings, upstream: Upstream) -> dict:
    found = containers.mirror_container(client, settings, upstream)
    return {"name": found.name, "state": found.state, "mode": found.mode}


def _object_store(store, found: cache_store.Probe | None) -> tuple[dict | None, list, int]:
    """An object store's answer to a blob read, what it holds (tags, bytes); None on a filesystem.

    `store`: the one the survey read (its listing is reused: no second LIST, no tag read twice)."""
    if found is None:
        return None, [], 0
    doc = {"answering": found.answering, "seconds": round(found.seconds, 3), "error": found.error,
           "bytes": None}
    tags = []
    if found.answering:
        try:
            for repository in store.repositories():
                revisions = set(store.revisions(repository))
                tags += [storage.CachedTag(repository, tag, digest)
                         for tag, digest in store.tags(repository).items() if digest in revisions]
            tags.sort()
            doc["bytes"] = store.usage()
        except StoreError as err:
            doc.update(answering=False, error=str(err))
            tags = []
    return doc, tags, doc["bytes"] or 0


@dataclass(frozen=True)
class Stores:
    """What status reads of the mirrors' storage, per upstream key."""
    probes: dict          # cache_store.Probe, or None on a filesystem
    survey: lifecycle.StatusSurvey
    objects: dict         # _object_store()'s (doc, tags, bytes)


def read_stores(settings: Settings, client, clock: Clock = SYSTEM_CLOCK) -> Stores:
    """Each upstream's store read once: one store object per upstream serves the probe's
    verdict, the lifecycle's survey and the object store's listing alike.

    An object store that cannot serve a blob read is not read further (each read would wait
    out its timeouts), nor is one that fails mid-survey: its upstream's "store" says why, and
    every other upstream's images are listed all the same."""
    probes = {u.key: cache_store.probe(settings, u) for u in settings.upstreams}
    answering = [u for u in settings.upstreams if probes[u.key] is None or probes[u.key].answering]
    stores = {u.key: cache_store.open_store(settings, u) for u in answering}
    survey = lifecycle.survey_rows(settings, client, clock, stores=stores, upstreams=answering)
    for key, error in survey.failed.items():
        if probes[key] is not None:
            probes[key] = replace(probes[key], answering=False, error=error)
    objects = {u.key: _object_store(stores.get(u.key), probes[u.key]) for u in settings.upstreams}
    return Stores(probes, survey, objects)


class StoresCache:
    """read_stores(), kept `ttl` seconds: the metrics service's scrapes and page views would
    otherwise each read every store (a LIST and a GET per tag on s3 and azure)."""

    def __init__(self, ttl: float):
        self.ttl, self.when, self.found = ttl, 0.0, None

    def get(self, settings: Settings, client, clock: Clock = SYSTEM_CLOCK) -> Stores:
        if self.found is None or time.monotonic() - self.when >= self.ttl:
            self.found = read_stores(settings, client, clock)
            self.when = time.monotonic()
        return self.found


def _upstream(settings: Settings, layout: Layout, upstream: Upstream, client, images: list[dict],
              found: tuple[dict | None, list, int]) -> dict:
    local = settings.storage.backend == "filesystem"
    storage_dir = layout.storage_dir(upstream) if local else None
    tags = storage.cached_tags(storage_dir) if local else []
    store, store_tags, store_bytes = found
    if store is not None:
        tags = store_tags
    return {
        "key": upstream.key,
        "registry": upstream.registry,
        "remote_url": upstream.display_url,
        "address": upstream.endpoint.listen,
        "url": upstream.endpoint.url,
        "container": _container(client, settings, upstream),
        "replicas": replicas.replica_rows(client, settings, upstream),   # [] with one replica
        "answering": answers(upstream.endpoint),
        "storage_dir": str(storage_dir) if local else None,
        "cached": [asdict(t) for t in tags],
        "repositories": len({t.repository for t in tags}),
        "tags": len(tags),
        "disk_bytes": storage.disk_usage(storage_dir) if local else store_bytes,
        # s3, azure: whether the store serves a blob read now, and its usage (None: filesystem)
        "store": store,
        "images": images,   # size, pinned, last pulled, when the lifecycle policy drops it
    }


def last_refresh(layout: Layout) -> dict | None:
    """The record the last refresh run wrote, or None when none ran yet."""
    try:
        data = json.loads(layout.last_refresh.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        return {**dict.fromkeys(LAST_REFRESH_KEYS), "failed": [], "result": "unreadable",
                "error": f"{layout.last_refresh}: {err}"}
    found = {key: data.get(key) for key in LAST_REFRESH_KEYS}
    found["failed"] = list(found["failed"] or [])
    if data.get("error"):  # what stopped the run as a whole (a full disk)
        found["error"] = str(data["error"])
    return found


def _refresh(settings: Settings, layout: Layout, now: float | None) -> dict:
    if not settings.refresh:
        upcoming, source = None, None
    elif systemd.systemd_is_pid1():
        upcoming, source = systemd.timer_next_elapse(settings.instance.refresh_timer), "timer"
    else:
        upcoming, source = systemd.next_elapse(settings.refresh_on_calendar, now), "calendar"
    return {"enabled": settings.refresh, "last": last_refresh(layout), "next": upcoming,
            "next_source": source, "schedule": settings.refresh_on_calendar}


def _headroom(settings: Settings) -> dict | None:
    """Docker Hub's pulls left for this host (a manifest HEAD, which is not a pull)."""
    hub = settings.upstream("dockerhub")
    if hub is None or not settings.pull_through:
        return None
    return hub_headroom.headroom(hub, timeout=hub_headroom.STATUS_TIMEOUT).to_json()


def _observe(settings: Settings) -> dict:
    """The metrics and status page service (mirror.services.observe_serve)."""
    lock = Layout.of(settings).root / "observe" / ".serve.lock"
    return {"enabled": settings.observe.enabled, "url": settings.observe.url, "pid": locks.holder(lock)}


def _with_damage(doc: dict, damaged: list[dict]) -> dict:
    """The upstream's damaged store entries (named, skipped, removed by the next collection);
    a tag whose manifest is damaged is not listed as cached. Status still exits 0 for them:
    the mirror serves everything else, and the next collection repairs it."""
    bad = {(d["repository"], d["name"]) for d in damaged if d["kind"] in ("manifest", "revision")}
    cached = [c for c in doc["cached"] if (c["repository"], c["digest"]) not in bad]
    return {**doc, "cached": cached, "repositories": len({c["repository"] for c in cached}),
            "tags": len(cached), "damaged": damaged}


def gather(settings: Settings, client, *, now: float | datetime | None = None,
           clock: Clock = SYSTEM_CLOCK, headroom: bool = True, stores: StoresCache | None = None) -> dict:
    """The status document; `client` is a docker client, or None when the engine is unreachable.

    `headroom`: ask Docker Hub for the pulls left (the metrics service asks on its own schedule);
    `stores`: the metrics service's cache of what the stores hold (read afresh when None)."""
    if isinstance(now, datetime):
        now = now.timestamp()
    layout = Layout.of(settings)
    found = read_stores(settings, client, clock) if stores is None else stores.get(settings, client, clock)
    rows, damaged = found.survey.rows, found.survey.damaged
    return {
        "config": settings.config_path,
        "path": settings.path,
        "enabled": settings.enabled,
        "storage_backend": settings.storage.backend,
        "upstreams": [_with_damage(_upstream(settings, layout, u, client, rows.get(u.key, []),
                                             found.objects[u.key]),
                                   damaged.get(u.key, [])) for u in settings.upstreams],
        "lifecycle": {"keep_unused_days": settings.lifecycle.keep_unused_days,
                      "max_bytes": settings.lifecycle.max_bytes,
                      "keep_previous": settings.lifecycle.keep_previous},
        "keeper": {"pid": locks.holder(layout.keeper_lock), "log": None if systemd.systemd_is_pid1()
                   else str(layout.keeper_log), "unit": settings.instance.keeper_unit,
                   "owner": _other_owner(settings, client)},
        "refresh": _refresh(settings, layout, now),
        "dockerhub_headroom": _headroom(settings) if headroom else None,
        "observe": _observe(settings),
        "tls": tls.status(settings),                          # None with TLS off
        "replicas": replicas.shared_status(client, settings),   # HAProxy and Redis; None with one replica
        "clients": client_status.rows(settings) if settings.use else [],   # per client: pointed at the mirror?
    }


def _other_owner(settings: Settings, client) -> str | None:
    """The other .config whose mirror (the same settings) this one uses, if so (services.ownership)."""
    if client is None:
        return None
    try:
        found = owners.owners(client, ownership.mirror_names(settings)[:1])
    except DockerError:
        return None
    owner = next(iter(found.values()), None)
    return owner if owner and owner != containers.config_of(settings) else None


# ---------------------------------------------------------------- reading the document

def exit_code(doc: dict) -> int:
    """0 when every enabled upstream's mirror answers, and its object store serves a blob read
    (none is, with the mirror disabled), and its TLS certificate has more than 30 days left,
    else 1."""
    if not doc["enabled"]:
        return 0
    if (doc.get("tls") or {}).get("warning"):
        return 1
    upstreams = doc["upstreams"]
    return 0 if upstreams and all(u["answering"] and (u.get("store") or {}).get("answering", True)
                                  for u in upstreams) else 1


def _plural(n: int, word: str, many: str) -> str:
    return f"{n} {word if n == 1 else many}"


def format_text(doc: dict) -> str:
    upstreams = [{
        **u,
        "summary": f"{_plural(u['repositories'], 'repository', 'repositories')} / "
                   f"{_plural(u['tags'], 'tag', 'tags')}",
        "lines": [f"{c['repository']}:{c['tag']}  {c['digest'][:19]}" for c in u["cached"]],
        "image_lines": [f"{i['repository']}:{','.join(i['tags']) or '-'}  {i['digest'][:19]}  "
                        f"{render.human_size(i['bytes'])}  {'pinned' if i['pinned'] else 'unpinned'}  "
                        f"last pulled {i['last_pulled'] or 'never'}  drops "
                        f"{i['drops'] or 'never (pinned)'}" for i in u["images"]],
        "disk": render.human_size(u["disk_bytes"]),
        "damaged_lines": [f"{d['repository']}{':' if d['kind'] == 'tag' else '@'}{d['name'][:80]} "
                          f"({d['kind']}): {d['reason']}" for d in u.get("damaged", [])],
    } for u in doc["upstreams"]]
    return render.render("status.txt.j2", doc=doc, upstreams=upstreams,
                         refresh=doc["refresh"], headroom=_headroom_text(doc)).rstrip("\n")


def _headroom_text(doc: dict) -> str | None:
    found = doc.get("dockerhub_headroom")
    return None if found is None else Headroom(**found).text


# ---------------------------------------------------------------- kdevops checks

def mirror_url(settings: Settings) -> str | None:
    """The Docker Hub mirror's URL when it answers, else None."""
    hub = settings.upstream("dockerhub")
    if hub is None or not answers(hub.endpoint):
        return None
    return hub.endpoint.url


def image_cached(settings: Settings, ref: str) -> bool:
    """True when a pull of `ref` is served from the cache of the mirror of its registry alone,
    on every backend (mirror.model.cached_image has the rule); a StoreError (exit 3: cannot
    tell) when its s3 bucket or azure container does not answer or refuses the keys."""
    parsed = images.parse(ref)
    upstream = next((u for u in settings.upstreams
                     if u.registry.lower() == parsed.registry.lower()), None)
    if upstream is None:
        return False
    try:
        return cache_store.open_store(settings, upstream).has_image(parsed)
    except StoreError as err:
        raise StoreError(f"cannot tell whether {ref} is cached: {err}") from None


def check(settings: Settings, name: str, image: str | None = None) -> tuple[str | None, int]:
    """One check_docker_mirror.sh check: (text to print or None, exit code)."""
    if name == "DOCKER_MIRROR_URL":
        url = mirror_url(settings)
        return url, 0 if url else 1
    if name == "DOCKER_MIRROR_EXISTS":
        return ("true" if mirror_url(settings) else "false"), 0
    if name == "DOCKER_MIRROR_DIR":
        return settings.path, 0
    if name == "IMAGE_EXISTS":
        if not image:
            raise UnknownCheck("IMAGE_EXISTS needs an image, e.g. IMAGE_EXISTS minio/minio:latest")
        return None, 0 if image_cached(settings, image) else 1
    raise UnknownCheck(f"unknown check {name!r}; valid checks: {', '.join(CHECKS)}")
