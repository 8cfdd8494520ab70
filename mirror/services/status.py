"""What the mirror holds and whether it answers (`make docker-mirror-status`,
check_docker_mirror.sh).

`gather()` collects one JSON-ready document from the Docker engine, the
storage tree, the mirror ports and the refresh record; `format_text()` and
`exit_code()` only read that document. No secret (passwords, account keys,
the http secret, credentials inside a URL) ever enters it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime

from .. import render
from ..model.settings import Settings, Upstream
from ..engine import containers, replicas
from ..errors import UnknownCheck
from ..host import locks, storage, systemd, tls
from ..host.layout import Layout
from ..model import images
from ..model.retention import SYSTEM_CLOCK, Clock
from ..model.traffic import Headroom
from ..net import headroom as hub_headroom
from ..net.probes import answers
from . import lifecycle

LAST_REFRESH_KEYS = ("started", "finished", "result", "log", "failed")
CHECKS = ("DOCKER_MIRROR_URL", "DOCKER_MIRROR_EXISTS", "DOCKER_MIRROR_DIR", "IMAGE_EXISTS")


# ---------------------------------------------------------------- parts of the document

def _container(client, settings: Settings, upstream: Upstream) -> dict:
    found = containers.mirror_container(client, settings, upstream)
    return {"name": found.name, "state": found.state, "mode": found.mode}


def _upstream(settings: Settings, layout: Layout, upstream: Upstream, client, images: list[dict]) -> dict:
    local = settings.storage.backend == "filesystem"
    storage_dir = layout.storage_dir(upstream) if local else None
    tags = storage.cached_tags(storage_dir) if local else []
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
        "disk_bytes": storage.disk_usage(storage_dir) if local else 0,
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


def gather(settings: Settings, client, *, now: float | datetime | None = None,
           clock: Clock = SYSTEM_CLOCK, headroom: bool = True) -> dict:
    """The status document; `client` is a docker client, or None when the engine is unreachable.

    `headroom`: ask Docker Hub for the pulls left (the metrics service asks on its own schedule)."""
    if isinstance(now, datetime):
        now = now.timestamp()
    layout = Layout.of(settings)
    rows = lifecycle.image_rows(settings, client, clock)
    return {
        "config": settings.config_path,
        "path": settings.path,
        "enabled": settings.enabled,
        "storage_backend": settings.storage.backend,
        "upstreams": [_upstream(settings, layout, u, client, rows.get(u.key, [])) for u in settings.upstreams],
        "lifecycle": {"keep_unused_days": settings.lifecycle.keep_unused_days,
                      "max_bytes": settings.lifecycle.max_bytes,
                      "keep_previous": settings.lifecycle.keep_previous},
        "keeper": {"pid": locks.holder(layout.keeper_lock), "log": None if systemd.systemd_is_pid1()
                   else str(layout.keeper_log), "unit": settings.instance.keeper_unit},
        "refresh": _refresh(settings, layout, now),
        "dockerhub_headroom": _headroom(settings) if headroom else None,
        "observe": _observe(settings),
        "tls": tls.status(settings),                          # None with TLS off
        "replicas": replicas.shared_status(client, settings),   # HAProxy and Redis; None with one replica
    }


# ---------------------------------------------------------------- reading the document

def exit_code(doc: dict) -> int:
    """0 when every enabled upstream's mirror answers (none is, with the mirror disabled), else 1."""
    if not doc["enabled"]:
        return 0
    upstreams = doc["upstreams"]
    return 0 if upstreams and all(u["answering"] for u in upstreams) else 1


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
    """True when `ref` is in the cache of the mirror of its registry (filesystem storage)."""
    parsed = images.parse(ref)
    upstream = next((u for u in settings.upstreams
                     if u.registry.lower() == parsed.registry.lower()), None)
    if upstream is None or settings.storage.backend != "filesystem":
        return False
    return storage.has_image(Layout.of(settings).storage_dir(upstream), parsed)


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
