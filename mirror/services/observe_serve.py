"""The metrics and status page service (`python3 -m mirror observe`).

One small read-only HTTP server per host, beside the mirrors:

- `/metrics`: Prometheus exposition (mirror.services.observe);
- `/`: the status page (templates/status-page.html.j2): each mirror's health
  and mode, the cached images with their `docker pull` line, disk use by
  image, hit ratio and bytes saved over time, the refresh logs;
- `/status.json`: the status document; `/logs/update-*.log`: refresh logs.

A sampler thread counts traffic every DOCKER_MIRROR_OBSERVE_INTERVAL seconds
and writes the textfile. One service per mirror directory (a lock holding
its pid, which `make docker-mirror-status` reports). With TLS configured for
the mirror, the page is served over TLS with the same certificate; with its
htpasswd, every path asks for one of the same users (Basic auth).
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from .. import render
from ..model.settings import Settings
from ..engine.client import connect
from ..config.kconfig import CONFIRM_AFTER
from ..errors import DockerError, MirrorError
from ..host import htpasswd, locks
from ..host.layout import Layout
from ..model import traffic as model
from ..model.second_look import second_look
from . import inputs, observe, status

PLOT_WIDTH = 640
_LOG_NAME = re.compile(r"^update-[0-9-]+\.log$")
REFRESH_LOGS_SHOWN = 20


def serve_lock(settings: Settings) -> Path:
    return observe.observe_dir(settings) / ".serve.lock"


def _client():
    try:
        return connect()
    except (DockerError, MirrorError):
        return None


def _reference(upstream: dict, image: dict) -> str:
    tag = image["tags"][0] if image["tags"] else None
    return f"{image['repository']}:{tag}" if tag else f"{image['repository']}@{image['digest']}"


def page_context(settings: Settings, doc: dict, history: list[dict], headroom: str) -> dict:
    """Everything the page shows, computed here so that the template only prints."""
    mirrors, images = [], []
    for u in doc["upstreams"]:
        mirrors.append({"key": u["key"], "registry": u["registry"], "address": u["address"],
                        "state": u["container"]["state"], "mode": u["container"]["mode"],
                        "answering": u["answering"], "disk": render.human_size(u["disk_bytes"]),
                        "count": len(u["images"])})
        host = u["url"].split("://", 1)[-1]
        for i in u["images"]:
            ref = _reference(u, i)
            images.append({"reference": f"{u['registry']}/{ref}", "digest": i["digest"],
                           "bytes": i["bytes"], "size": render.human_size(i["bytes"]),
                           "pinned": i["pinned"], "last_pulled": i["last_pulled"],
                           "pull": f"docker pull {host}/{ref}"})
    largest = max((i["bytes"] for i in images), default=0) or 1
    bars = [{"width": round(i["bytes"] / largest * (PLOT_WIDTH - 340)),
             "label": f"{i['reference']} {i['size']}"}
            for i in sorted(images, key=lambda i: -i["bytes"])[:30]]
    last = history[-1] if history else {}
    ratio = last.get("hit_ratio")
    logs = Layout.of(settings).logs_dir
    names = sorted((p.name for p in logs.glob("update-*.log")), reverse=True)[:REFRESH_LOGS_SHOWN] \
        if logs.is_dir() else []
    last_refresh = doc["refresh"]["last"] or {}
    refreshes = [{"name": n, "result": last_refresh.get("result") if last_refresh.get("log", "").endswith(n)
                  else ""} for n in names]
    return {
        "doc": doc, "mirrors": mirrors, "images": images, "bars": bars, "plot_width": PLOT_WIDTH,
        "running": any(u["answering"] for u in doc["upstreams"]),
        "figures": {"hit_ratio": "n/a" if ratio is None else f"{ratio:.0%}",
                    "saved": render.human_size(max(0, last.get("saved_bytes", 0)))},
        "headroom": headroom, "samples": len(history), "refreshes": refreshes,
        "ratio_line": model.polyline(model.series(history, "hit_ratio"), PLOT_WIDTH, 110, top=1.0),
        "saved_line": model.polyline(model.series(history, "saved_bytes"), PLOT_WIDTH, 110),
    }


class Service:
    """The state the handler reads: settings, probes, the collector registry."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.probes = observe.Probes(settings, ttl=settings.observe.interval)
        self.collectors = observe.registry(settings, _client, self.probes)
        self.users = htpasswd.Users(settings.htpasswd_path) if settings.htpasswd_path else None

    def page(self) -> str:
        client = _client()
        doc = status.gather(self.settings, client, headroom=False, stores=self.probes.stores)
        self.probes.refresh()
        headroom = self.probes.headroom.text if self.probes.headroom else "no Docker Hub mirror"
        context = page_context(self.settings, doc, observe.read_history(self.settings), headroom)
        return render.render("status-page.html.j2", **context)

    def status_json(self) -> str:
        doc = status.gather(self.settings, _client(), headroom=False, stores=self.probes.stores)
        found = self.probes.refresh().headroom    # asked at most once per sample interval
        doc["dockerhub_headroom"] = found.to_json() if found else None
        return json.dumps(doc, indent=2)

    def tick(self) -> None:
        """One sample: count the traffic, then write the textfile (when configured)."""
        observe.sample(self.settings, _client())
        observe.write_textfile(self.settings, self.collectors)


def _handler(service: Service):
    class Handler(BaseHTTPRequestHandler):
        server_version = "docker-mirror-observe"
        timeout = 30    # seconds a client may stay silent (or mid-handshake)

        def end_headers(self) -> None:
            # Every answer, the 401 and 404 included: the logs hold text upstreams control, and
            # a browser must never sniff it (or any other answer) into HTML or script.
            self.send_header("X-Content-Type-Options", "nosniff")
            super().end_headers()

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _allowed(self) -> bool:
            """Behind the mirror's own htpasswd when it has one (Basic auth, over TLS when on)."""
            if service.users is None:
                return True
            kind, _, encoded = self.headers.get("Authorization", "").partition(" ")
            try:
                user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user = password = ""
            if kind.lower() == "basic" and user and service.users.check(user, password):
                return True
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Basic realm="{render.HTPASSWD_REALM}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False

        def do_GET(self):   # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if not self._allowed():
                return None
            try:
                if path == "/metrics":
                    return self._send(200, observe.exposition(service.collectors),
                                      "text/plain; version=0.0.4; charset=utf-8")
                if path in ("/", "/index.html"):
                    return self._send(200, service.page().encode(), "text/html; charset=utf-8")
                if path == "/status.json":
                    return self._send(200, service.status_json().encode(), "application/json")
                if path.startswith("/logs/") and _LOG_NAME.match(path[6:]):
                    log = Layout.of(service.settings).logs_dir / path[6:]
                    if log.is_file():
                        return self._send(200, log.read_bytes(), "text/plain; charset=utf-8")
                return self._send(404, b"not found\n", "text/plain")
            except MirrorError as err:
                return self._send(503, f"error: {err}\n".encode(), "text/plain; charset=utf-8")

        do_HEAD = do_GET    # noqa: N815

        def log_message(self, *args):   # the journal gets what changes, not every scrape
            pass

    return Handler


def make_server(settings: Settings, service: Service | None = None) -> ThreadingHTTPServer:
    """The server bound to the configured address (not yet serving)."""
    service = service or Service(settings)
    try:
        server = ThreadingHTTPServer((settings.observe.address, settings.observe.port), _handler(service))
    except OSError as err:
        raise MirrorError(f"cannot listen on {settings.observe.address}:{settings.observe.port} "
                          f"(CONFIG_DOCKER_MIRROR_OBSERVE_ADDRESS / _PORT): {err.strerror or err}") from None
    server.daemon_threads = True
    if settings.tls_certificate and settings.tls_key:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(settings.tls_certificate, settings.tls_key)
        # The handshake happens in each request's thread, so a client that never
        # completes one holds only its own thread (for `timeout`), not the accept loop.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.service = service
    return server


def unwanted(settings: Settings, reload: Callable[[], Settings]) -> str | None:
    """Why this page should stop, from .config read again (`reload`), as the keeper reads it:
    its .config gone or unreadable, the mirror or the page switched off, the mirror moved to
    another directory (whose own page `make docker-mirror` starts: this one holds the port).
    None while the page is still wanted."""
    try:
        now = reload()
    except (MirrorError, OSError) as err:
        return f"{settings.config_path} cannot be read ({err})"
    if not now.enabled:
        return "the mirror is switched off in .config"
    if not now.observe.enabled:
        return "the status page is switched off in .config"
    if now.path != settings.path:
        return f"the mirror moved to {now.path}"
    return None


def serve(settings: Settings, log=print, stop: threading.Event | None = None,
          reload: Callable[[], Settings] | None = None) -> int:
    """Serve until stopped, or, with `reload` (.config read again), until unwanted(); one
    service per mirror directory."""
    stop = stop or threading.Event()
    with locks.held(serve_lock(settings), wait=False,
                    busy=lambda: MirrorError(f"a status service already runs for {settings.path} "
                                             f"(pid {locks.holder(serve_lock(settings))})")) as lock:
        inputs.record(lock, serve_lock(settings), settings)   # `make docker-mirror` restarts it when they change
        locks.record_pid(lock)
        server = make_server(settings)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        log(f"metrics and status page on {settings.observe.url}/ (metrics: /metrics)")
        try:
            while not stop.is_set():
                try:
                    server.service.tick()
                except (MirrorError, OSError) as err:
                    log(f"sample failed: {err}")
                if reload and (reason := second_look(lambda: unwanted(settings, reload), stop.wait,
                                                     CONFIRM_AFTER)):
                    log(f"{reason}: the status page stops")
                    break
                stop.wait(settings.observe.interval)
        finally:
            server.shutdown()
            server.server_close()
    return 0
