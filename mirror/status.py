"""What the mirror holds and whether it answers (`make docker-mirror-status`,
check_docker_mirror.sh).

`gather()` collects one JSON-ready document from the Docker engine, the
storage tree, the mirror ports and the refresh record; `format_text()` and
`exit_code()` only read that document. No secret (passwords, account keys,
the http secret, credentials inside a URL) ever enters it.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from . import images, probes, render, storage
from . import layout as L
from .errors import MirrorError
from .probes import host_port, probe_host
from .settings import Settings, Upstream

REFRESH_TIMER = "docker-mirror-update.timer"
SYSTEMD_TIMEOUT = 5.0   # seconds for systemctl / systemd-analyze
LAST_REFRESH_KEYS = ("started", "finished", "result", "log", "failed")
CHECKS = ("DOCKER_MIRROR_URL", "DOCKER_MIRROR_EXISTS", "DOCKER_MIRROR_DIR", "IMAGE_EXISTS")


class UnknownCheck(MirrorError):
    exit_code = 2


# ---------------------------------------------------------------- addresses

def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def answers(settings: Settings, upstream: Upstream) -> bool:
    """True when the mirror of `upstream` answers the registry API on its port."""
    return probes.registry_answers(probe_host(settings.bind_address), upstream.port,
                                   tls=bool(settings.tls_certificate))


# ---------------------------------------------------------------- parts of the document

def _container(client, name: str) -> dict:
    if client is None:
        return {"name": name, "state": "unknown", "mode": None}
    import docker.errors
    import requests
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        return {"name": name, "state": "absent", "mode": None}
    except (docker.errors.DockerException, requests.RequestException):
        return {"name": name, "state": "unknown", "mode": None}
    return {"name": name, "state": container.status,
            "mode": (container.labels or {}).get(L.LABEL_MODE)}


def _upstream(settings: Settings, layout: L.Layout, upstream: Upstream, client) -> dict:
    local = settings.storage.backend == "filesystem"
    storage_dir = layout.storage_dir(upstream) if local else None
    tags = storage.cached_tags(storage_dir) if local else []
    return {
        "key": upstream.key,
        "registry": upstream.registry,
        "remote_url": _without_credentials(upstream.remote_url),
        "address": host_port(settings.bind_address, upstream.port),
        "url": L.mirror_url(settings, upstream),
        "container": _container(client, L.container_name(settings, upstream)),
        "answering": answers(settings, upstream),
        "storage_dir": str(storage_dir) if local else None,
        "cached": [asdict(t) for t in tags],
        "repositories": len({t.repository for t in tags}),
        "tags": len(tags),
        "disk_bytes": storage.disk_usage(storage_dir) if local else 0,
    }


def last_refresh(layout: L.Layout) -> dict | None:
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
    return found


def _run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=SYSTEMD_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def next_elapse(on_calendar: str, now: float | None = None) -> str | None:
    """When `on_calendar` next elapses after `now` (epoch seconds; default now),
    as systemd-analyze writes it ('Tue 2026-11-24 02:00:00 UTC'); None when
    systemd-analyze is missing, slow or rejects the expression."""
    argv = ["systemd-analyze", "calendar", "--iterations=1"]
    if now is not None:
        argv.append(f"--base-time=@{int(now)}")
    out = _run([*argv, "--", on_calendar])
    for line in (out or "").splitlines():
        label, colon, value = line.strip().partition(":")
        if colon and label == "Next elapse":
            return value.strip() or None
    return None


def timer_next_elapse() -> str | None:
    """The refresh timer's next run as systemd has it scheduled (systemd hosts)."""
    out = _run(["systemctl", "show", REFRESH_TIMER, "-p", "NextElapseUSecRealtime", "--value"])
    value = (out or "").strip()
    return value if value and value != "n/a" else None


def _refresh(settings: Settings, layout: L.Layout, now: float | None) -> dict:
    if not settings.refresh:
        upcoming, source = None, None
    elif probes.systemd_is_pid1():
        upcoming, source = timer_next_elapse(), "timer"
    else:
        upcoming, source = next_elapse(settings.refresh_on_calendar, now), "calendar"
    return {"enabled": settings.refresh, "last": last_refresh(layout), "next": upcoming,
            "next_source": source, "schedule": settings.refresh_on_calendar}


def gather(settings: Settings, client, *, now: float | datetime | None = None) -> dict:
    """The status document; `client` is a docker client, or None when the engine is unreachable."""
    if isinstance(now, datetime):
        now = now.timestamp()
    layout = L.Layout.of(settings)
    return {
        "config": settings.config_path,
        "path": settings.path,
        "enabled": settings.enabled,
        "storage_backend": settings.storage.backend,
        "upstreams": [_upstream(settings, layout, u, client) for u in settings.upstreams],
        "refresh": _refresh(settings, layout, now),
    }


# ---------------------------------------------------------------- reading the document

def exit_code(doc: dict) -> int:
    """0 when every enabled upstream's mirror answers (none is, with the mirror disabled), else 1."""
    if not doc["enabled"]:
        return 0
    upstreams = doc["upstreams"]
    return 0 if upstreams and all(u["answering"] for u in upstreams) else 1


def human_size(n: int) -> str:
    """1536 -> '1.5 KiB' (binary units, as du -h)."""
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


def _plural(n: int, word: str, many: str) -> str:
    return f"{n} {word if n == 1 else many}"


def format_text(doc: dict) -> str:
    upstreams = [{
        **u,
        "summary": f"{_plural(u['repositories'], 'repository', 'repositories')} / "
                   f"{_plural(u['tags'], 'tag', 'tags')}",
        "lines": [f"{c['repository']}:{c['tag']}  {c['digest'][:19]}" for c in u["cached"]],
        "disk": human_size(u["disk_bytes"]),
    } for u in doc["upstreams"]]
    return render.render("status.txt.j2", doc=doc, upstreams=upstreams,
                         refresh=doc["refresh"]).rstrip("\n")


# ---------------------------------------------------------------- kdevops checks

def mirror_url(settings: Settings) -> str | None:
    """The Docker Hub mirror's URL when it answers, else None."""
    hub = settings.upstream("dockerhub")
    if hub is None or not answers(settings, hub):
        return None
    return L.mirror_url(settings, hub)


def image_cached(settings: Settings, ref: str) -> bool:
    """True when `ref` is in the cache of the mirror of its registry (filesystem storage)."""
    parsed = images.parse(ref)
    upstream = next((u for u in settings.upstreams
                     if u.registry.lower() == parsed.registry.lower()), None)
    if upstream is None or settings.storage.backend != "filesystem":
        return False
    return storage.has_image(L.Layout.of(settings).storage_dir(upstream), parsed)


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
