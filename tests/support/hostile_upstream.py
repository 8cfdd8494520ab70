"""An upstream that is a real registry for every repository but one, where it serves a
malformed manifest (a layer digest like `sha256:../../...`): what a mirror caches when a
client pulls from a hostile or broken upstream. A real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading

import requests

TRAVERSAL = "sha256:../../../../etc/evil"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class HostileUpstream:
    """`url` forwards to `real_url`, except `/v2/<repository>/...`, which serves `manifest`."""

    def __init__(self, real_url: str, repository: str, layer_digest: str = TRAVERSAL):
        self.real_url, self.repository = real_url.rstrip("/"), repository
        self.config = b"{}"
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": _digest(self.config), "size": len(self.config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest, "size": 1}]}).encode()
        self.digest = _digest(self.manifest)
        self.requests: list[str] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self):
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, headers: dict, body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _serve(self):
                upstream.requests.append(f"{self.command} {self.path}")
                own = f"/v2/{upstream.repository}/"
                if self.path.startswith(own + "manifests/"):
                    return self._send(200, {"Content-Type": OCI_MANIFEST,
                                            "Docker-Content-Digest": upstream.digest}, upstream.manifest)
                if self.path == f"{own}blobs/{_digest(upstream.config)}":
                    return self._send(200, {"Content-Type": "application/octet-stream",
                                            "Docker-Content-Digest": _digest(upstream.config)}, upstream.config)
                if self.path.startswith(own):
                    return self._send(404, {"Content-Type": "application/json"},
                                      b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
                # distribution sends one Accept line per media type: all of them, or the upstream
                # answers with a schema 1 manifest the proxy refuses.
                headers = {"Accept": ", ".join(self.headers.get_all("Accept") or ["*/*"])}
                if self.headers.get("Authorization"):
                    headers["Authorization"] = self.headers["Authorization"]
                answer = requests.request(self.command, upstream.real_url + self.path, headers=headers,
                                          timeout=30, allow_redirects=False)
                passed = {k: v for k, v in answer.headers.items()
                          if k.lower() in ("content-type", "docker-content-digest", "location",
                                           "www-authenticate", "docker-distribution-api-version")}
                body = answer.content
                if self.command == "HEAD":
                    passed["Content-Length"] = answer.headers.get("Content-Length", "0")
                    self.send_response(answer.status_code)
                    for name, value in passed.items():
                        self.send_header(name, value)
                    self.end_headers()
                    return None
                return self._send(answer.status_code, passed, body)

            do_GET = do_HEAD = _serve

        return Handler

    def __enter__(self) -> "HostileUpstream":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
