"""A throttling TCP proxy on loopback: a slow upstream without `tc netem`.

Bandwidth is shared by all connections (one token bucket for the
upstream-to-client direction), and each request pays `latency` seconds
before it is forwarded, like a round trip to a distant registry.
`cut()` drops every connection at once, as an upstream dying mid-transfer.
"""

import socket
import threading
import time


class TokenBucket:
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


class ThrottlingProxy:
    def __init__(self, target: tuple[str, int], rate_bytes: float = 0, latency: float = 0.0):
        self.target = target
        self.bucket = TokenBucket(rate_bytes)
        self.latency = latency
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.bytes_down = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, server}
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, source, sink, downstream: bool):
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                if downstream:
                    self.bucket.take(len(chunk))
                    with self.lock:
                        self.bytes_down += len(chunk)
                elif self.latency:
                    time.sleep(self.latency)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        """Drop every open connection (new ones are still accepted)."""
        with self.lock:
            sockets, self.sockets = self.sockets, set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.listener.close()
        self.cut()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
