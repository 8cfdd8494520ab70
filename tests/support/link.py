"""A shared link on loopback: one bandwidth budget for every connection, and a count of what crosses it.

Tests and bench/ put it between a mirror and its upstream registry (or between
clients and a registry) to act out a distant registry: `tc netem` is not
available here. It is a TCP proxy on 127.0.0.1 whose connections all draw on
one token bucket per direction, as on a real access link (full duplex: the
budget that matters is the downstream one, the upstream one only carries
requests). A cap per connection would hide a double fetch, because the
second connection would get a budget of its own; here it costs its bytes.

Latency: `latency` seconds, a round trip, paid once when a connection opens
(the TCP handshake) and once per request (each time the client speaks after
the server has answered). A delay per connection alone would make keep-alive
clients, which is every registry client, look as if they were next door; a
delay per request alone would make a client that opens a connection per blob
look as cheap as one that reuses them.

Counting: bytes per direction, connections, and every request with its
method, path, status and answer (header bytes and body bytes apart), read
from the HTTP/1.1 framing as it crosses. Registry clients do not pipeline,
so a request's answer is whatever comes back before the client speaks again.
`reset()` zeroes the counts; `cut()` drops every open connection at once, as
an upstream dying mid-transfer; `hold(text)` keeps back the answers to GETs
whose path contains `text` until `release()`, so a test can be sure several
clients ask for a blob while it is still on its way.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from dataclasses import dataclass, field

CHUNK = 65536
HEADER_LIMIT = 65536   # an answer's header block is never bigger; past it, stop looking for its end
HOLD_TIMEOUT = 120.0   # a forgotten release() must not hang a test run forever


class TokenBucket:
    """`rate` bytes per second shared by every caller; 0 means unlimited.

    Each take() books the next free slice of the link and sleeps until it
    is over, so callers are served in the order they asked, at `rate` in all.
    """

    def __init__(self, rate: float):
        self.rate = rate
        self.lock = threading.Lock()
        self.next_free = time.monotonic()

    def take(self, amount: int) -> None:
        if not self.rate:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_free)
            self.next_free = start + amount / self.rate
            wait = self.next_free - now
        if wait > 0:
            time.sleep(wait)


@dataclass
class Request:
    """One request that crossed the link, and the answer that came back to it."""
    method: str
    path: str
    status: int = 0          # 0: no complete status line came back
    header_bytes: int = 0    # status line and headers, up to the blank line
    body_bytes: int = 0      # what followed them
    _head: bytes = field(default=b"", repr=False)

    @property
    def bytes_down(self) -> int:
        return self.header_bytes + self.body_bytes

    def blob(self) -> str | None:
        """The digest when this is a GET of a blob (`/v2/NAME/blobs/DIGEST`), else None."""
        if self.method != "GET" or "/blobs/" not in self.path:
            return None
        digest = self.path.split("?", 1)[0].rsplit("/blobs/", 1)[1]
        return digest if ":" in digest and "/" not in digest else None

    def _answer(self, chunk: bytes) -> None:
        if self.header_bytes or len(self._head) >= HEADER_LIMIT:
            self.body_bytes += len(chunk)
            return
        self._head += chunk
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return
        self.header_bytes = end + 4
        self.body_bytes = len(self._head) - self.header_bytes
        status = self._head.split(b"\r\n", 1)[0].split()
        if len(status) >= 2 and status[1].isdigit():
            self.status = int(status[1])
        self._head = b""


@dataclass(frozen=True)
class LinkCounts:
    """What crossed the link since it started or was last reset."""
    bytes_down: int
    bytes_up: int
    connections: int
    requests: tuple[Request, ...]

    def blob_gets(self) -> dict[str, list[Request]]:
        """{digest: the GETs of that blob}, in the order they were made."""
        found: dict[str, list[Request]] = {}
        for request in self.requests:
            digest = request.blob()
            if digest:
                found.setdefault(digest, []).append(request)
        return found

    @property
    def blob_body_bytes(self) -> int:
        """Bytes of blob content that came down (the bodies of blob GETs)."""
        return sum(r.body_bytes for gets in self.blob_gets().values() for r in gets)

    @property
    def overhead(self) -> int:
        """Everything else that came down: every answer's headers, manifests, pings, errors."""
        return self.bytes_down - self.blob_body_bytes


class _Connection:
    def __init__(self, client: socket.socket):
        self.client = client
        self.server: socket.socket | None = None
        self.current: Request | None = None
        self.answered = True   # the server spoke since the client last did: the next bytes up open a request
        self.pipes_done = 0


class SharedLink:
    """A TCP proxy from 127.0.0.1:`port` to `target`; see the module's docstring."""

    def __init__(self, target: tuple[str, int], rate_bytes: float = 0, latency: float = 0.0):
        self.target = target
        self.rate = rate_bytes
        self.down = TokenBucket(rate_bytes)
        self.up = TokenBucket(rate_bytes)
        self.latency = latency
        self.lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._released = threading.Event()
        self._released.set()
        self._hold_text = ""
        self.closed = False
        self._bytes_down = self._bytes_up = self._connection_count = 0
        self._requests: list[Request] = []
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        threading.Thread(target=self._accept, daemon=True).start()

    # ------------------------------------------------------------ counts

    def counts(self) -> LinkCounts:
        with self.lock:
            return self._snapshot()

    def reset(self) -> LinkCounts:
        """Zero the counts; returns what they were."""
        with self.lock:
            before = self._snapshot()
            self._bytes_down = self._bytes_up = self._connection_count = 0
            self._requests = []
        return before

    def _snapshot(self) -> LinkCounts:
        # copies: the requests still open go on counting their answers
        return LinkCounts(self._bytes_down, self._bytes_up, self._connection_count,
                          tuple(dataclasses.replace(r) for r in self._requests))

    @property
    def bytes_down(self) -> int:
        return self._bytes_down

    @property
    def bytes_up(self) -> int:
        return self._bytes_up

    # ------------------------------------------------------------ control

    def hold(self, text: str) -> None:
        """Keep back the answers to GETs whose path contains `text` until release()."""
        self._hold_text = text
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def answering(self, text: str) -> tuple[Request, tuple[str, int]] | None:
        """The request now being answered whose path contains `text`, and the address its
        client dials from (to tell which process asked), or None."""
        with self.lock:
            for conn in self._connections:
                if conn.current is not None and text in conn.current.path:
                    try:
                        return conn.current, conn.client.getpeername()
                    except OSError:   # closed meanwhile
                        return None
        return None

    def cut(self) -> None:
        """Drop every open connection (new ones are still accepted)."""
        with self.lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            for sock in (conn.client, conn.server):
                if sock is None:
                    continue
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.closed = True
        self.release()
        self.listener.close()
        self.cut()

    def __enter__(self) -> "SharedLink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ the proxy

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._open, args=(_Connection(client),), daemon=True).start()

    def _open(self, conn: _Connection) -> None:
        if self.latency:
            time.sleep(self.latency)   # the handshake's round trip; bytes sent meanwhile wait in the kernel
        try:
            conn.server = socket.create_connection(self.target, timeout=10)
            conn.server.settimeout(None)
        except OSError:
            conn.client.close()
            return
        with self.lock:
            self._connections.add(conn)
            self._connection_count += 1
        threading.Thread(target=self._pipe_up, args=(conn,), daemon=True).start()
        self._pipe_down(conn)

    def _pipe_up(self, conn: _Connection) -> None:
        try:
            while True:
                chunk = conn.client.recv(CHUNK)
                if not chunk:
                    break
                if conn.answered:
                    conn.answered = False
                    if self.latency:
                        time.sleep(self.latency)   # the request's round trip
                    self._new_request(conn, chunk)
                self.up.take(len(chunk))
                conn.server.sendall(chunk)
                with self.lock:
                    self._bytes_up += len(chunk)
        except OSError:
            pass
        finally:
            self._shut(conn)

    def _pipe_down(self, conn: _Connection) -> None:
        try:
            while True:
                chunk = conn.server.recv(CHUNK)
                if not chunk:
                    break
                request = conn.current
                if request is not None and not self._released.is_set() and request.method == "GET" \
                        and self._hold_text and self._hold_text in request.path:
                    self._released.wait(HOLD_TIMEOUT)
                self.down.take(len(chunk))
                conn.answered = True   # before sending: the client may answer at once
                conn.client.sendall(chunk)
                with self.lock:
                    self._bytes_down += len(chunk)
                    if request is not None:
                        request._answer(chunk)
        except OSError:
            pass
        finally:
            self._shut(conn)

    def _new_request(self, conn: _Connection, chunk: bytes) -> None:
        words = chunk.split(b"\r\n", 1)[0].split(b" ")
        method, path = (words[0].decode("latin-1"), words[1].decode("latin-1")) if len(words) >= 3 else ("?", "")
        conn.current = Request(method, path)
        with self.lock:
            self._requests.append(conn.current)

    def _shut(self, conn: _Connection) -> None:
        """One direction ended: end the other too; the last of the two closes the sockets."""
        for sock in (conn.client, conn.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            conn.pipes_done += 1
            last = conn.pipes_done == 2
            if last:
                self._connections.discard(conn)
        if last:
            conn.client.close()
            conn.server.close()
