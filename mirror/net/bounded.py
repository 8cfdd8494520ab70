"""HTTP with an overall deadline and a size cap: every registry request of mirror.net.

`requests`' timeout bounds each socket read, not a request: a server that
trickles one byte a second never trips it. Here each request gets a session
whose adapter records the connections it opens, and a watchdog thread that
shuts those sockets down once the deadline passes; the blocked read then
fails at once and the caller gets DeadlineExceeded. Streams re-arm the
watchdog on progress (`Watched.extend`), so a large blob may take as long
as it keeps moving, and a stalled one is cut.

Bodies read whole (manifests, tokens, error texts) are capped: a server
announcing or sending more than the cap gets ResponseTooLarge, after at
most cap + one chunk of reading.
"""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..errors import DeadlineExceeded, RegistryAPIError, ResponseTooLarge

CHUNK = 64 << 10
ERROR_BODY_CAP = 64 << 10


def display(url: str) -> str:
    """`url` without any user:password@: the form to log and put in errors."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class _Adapter(HTTPAdapter):
    """Keeps every connection its pools open, for the watchdog to cut."""

    def __init__(self, check_hostname: bool = True):
        self.connections: list = []
        self.check_hostname = check_hostname
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        if not self.check_hostname:
            kwargs["assert_hostname"] = False
        super().init_poolmanager(*args, **kwargs)
        opened = self.connections

        def watched(base):
            def _new_conn(pool):
                conn = base._new_conn(pool)
                opened.append(conn)
                return conn
            return type(f"Watched{base.__name__}", (base,), {"_new_conn": _new_conn})
        self.poolmanager.pool_classes_by_scheme = {"http": watched(HTTPConnectionPool),
                                                   "https": watched(HTTPSConnectionPool)}


class Watched:
    """One request's session and its watchdog; a context manager."""

    def __init__(self, seconds: float, what: str, check_hostname: bool = True):
        self.seconds = seconds
        self.what = what
        self.adapter = _Adapter(check_hostname)
        self.session = requests.Session()
        self.session.mount("http://", self.adapter)
        self.session.mount("https://", self.adapter)
        self.expires = time.monotonic() + seconds
        self.fired = False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True, name="http-deadline")
        self.thread.start()

    def extend(self) -> None:
        """Progress was made: the deadline moves `seconds` on from now."""
        self.expires = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return max(0.01, self.expires - time.monotonic())

    def _watch(self) -> None:
        while not self.done.wait(max(0.01, min(0.2, self.expires - time.monotonic()))):
            if time.monotonic() >= self.expires:
                self.fired = True
                for conn in list(self.adapter.connections):
                    sock = getattr(conn, "sock", None)
                    if sock is not None:
                        try:
                            # socket.socket's own shutdown, also for an SSLSocket:
                            # wakes the reader without touching the TLS state it holds.
                            socket.socket.shutdown(sock, socket.SHUT_RDWR)
                        except OSError:
                            pass
                return

    def expired(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"{self.what}: no complete answer within {self.seconds:g} s")

    def close(self) -> None:
        self.done.set()
        self.session.close()

    def __enter__(self) -> "Watched":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_capped(answer: requests.Response, cap: int, what: str, watch: Watched | None = None) -> bytes:
    """The whole body of a streamed `answer`, refused beyond `cap` bytes."""
    announced = answer.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > cap:
        answer.close()
        raise ResponseTooLarge(f"{what}: answer of {announced} bytes refused (at most {cap})",
                               answer.status_code)
    body = bytearray()
    try:
        for chunk in answer.iter_content(CHUNK):
            body += chunk
            if len(body) > cap:
                answer.close()
                raise ResponseTooLarge(f"{what}: answer over {cap} bytes refused", answer.status_code)
    except requests.RequestException as err:
        if watch is not None and watch.fired:
            raise watch.expired() from None
        raise RegistryAPIError(f"{what}: transfer broke after {len(body)} bytes "
                               f"({err.__class__.__name__})", answer.status_code) from None
    if watch is not None and watch.fired:
        raise watch.expired()
    return bytes(body)


def error_text(answer: requests.Response, watch: Watched | None = None, limit: int = 200) -> str:
    """The first `limit` characters of an error body, printable, never more than the cap read."""
    try:
        body = read_capped(answer, ERROR_BODY_CAP, "error body", watch)
    except RegistryAPIError:
        return ""
    text = body[:limit * 4].decode("utf-8", "replace")
    return "".join(c if c.isprintable() else " " for c in text)[:limit].strip()


def answers(url: str, timeout: float) -> bool:
    """True when a registry at `url` answers /v2/ (401 counts) within `timeout`, whole."""
    with Watched(timeout, display(url)) as watch:
        try:
            answer = watch.session.get(f"{url}/v2/", timeout=timeout, stream=True)
            answer.close()
        except requests.RequestException:
            return False
        return not watch.fired and answer.status_code < 500
