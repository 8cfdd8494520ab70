"""An upstream registry that answers /v2/ like any other, then serves manifests far over
the 4 MiB the mirror accepts: a real HTTP server on 127.0.0.1, for a pull-through mirror
to be pointed at.

Each repository's `latest` is one manifest of `size` bytes (valid JSON: a schema2
manifest padded with spaces), sent with its Docker-Content-Digest. Repositories named
`*/chunked` send it with no Content-Length, so only a bounded read stops it; the others
announce the size. `sent` counts the manifest bytes the mirror took.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def padded_manifest(size: int) -> bytes:
    body = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                       "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                  "size": 2, "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest()},
                       "layers": []}).encode()
    return body + b" " * (size - len(body))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # A small send buffer: what `sent` counts is then what the mirror read, give or take
        # its own receive buffer, not megabytes parked in this side's kernel buffer.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 << 10)

    def _manifest_request(self) -> bool:
        return "/manifests/" in self.path

    def _head(self, chunked: bool):
        server = self.server
        self.send_response(200)
        self.send_header("Content-Type", MANIFEST_TYPE)
        self.send_header("Docker-Content-Digest", server.digest)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(server.body)))
        self.end_headers()

    def do_HEAD(self):
        if not self._manifest_request():
            self.send_response(200 if self.path.rstrip("/") == "/v2" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._head(chunked=False)

    def do_GET(self):
        if not self._manifest_request():
            body = b"{}" if self.path.rstrip("/") == "/v2" else b'{"errors":[{"code":"NAME_UNKNOWN"}]}'
            self.send_response(200 if body == b"{}" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        chunked = "/chunked/" in self.path
        self._head(chunked)
        body = self.server.body
        try:
            for start in range(0, len(body), 64 << 10):
                piece = body[start:start + (64 << 10)]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                with self.server.lock:
                    self.server.sent += len(piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True   # the mirror hung up: it refused the rest


class HugeManifestUpstream(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, size: int):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.body = padded_manifest(size)
        self.digest = "sha256:" + hashlib.sha256(self.body).hexdigest()
        self.sent = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
