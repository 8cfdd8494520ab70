"""Misbehaving TCP peers on loopback, for bounding probe times.

`dropping_address()` gives an address whose SYNs are dropped, like a
firewalled host: a listener with a zero backlog whose accept queue is
already full, so the kernel silently drops further connection attempts
(no `tc netem` or iptables needed).
"""

import contextlib
import http.server
import socket
import threading


@contextlib.contextmanager
def dropping_address():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    host, port = listener.getsockname()
    fillers = []
    try:
        # Fill the accept queue (backlog 0 still admits one); connections
        # beyond it get no SYN-ACK at all.
        for _ in range(2):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            filler.connect_ex((host, port))
            fillers.append(filler)
        yield host, port
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


@contextlib.contextmanager
def silent_address():
    """Accepts connections and never says a word."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield listener.getsockname()
    finally:
        listener.close()


class _NotARegistry(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html>some other service</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def other_http_service():
    """An HTTP server that answers 200 to everything but is no registry."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotARegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address
    finally:
        server.shutdown()
        server.server_close()
