"""The upstream credentials stay with their host, end to end: a pull-through mirror of the
product, configured with an upstream user and password, in front of an upstream whose /v2/
challenge names a plain-HTTP token realm on another host (patches/distribution/0002).

Real servers on loopback: the upstream on 127.0.0.1, the token realm on 127.0.0.2 (another
host to the registry's eyes), both recording every Authorization header they get.
"""

import http.server
import json
import threading

import pytest
import requests

USER, PASSWORD = "upstream-user", "upstream-password-never-sent-in-clear"


class Recorder:
    """A plain-HTTP server on `host`: `/v2/` asks for a bearer token at `realm`; the token
    endpoint hands one out; every other path is 404. Records (path, Authorization) pairs."""

    def __init__(self, host: str):
        self.seen: list[tuple[str, str]] = []
        self.realm = ""
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                recorder.seen.append((self.path, self.headers.get("Authorization", "")))
                if self.path.startswith("/token"):
                    body, status, headers = json.dumps({"token": "t", "access_token": "t"}).encode(), 200, {}
                elif self.path == "/v2/" or not self.headers.get("Authorization"):
                    body, status = b'{"errors":[{"code":"UNAUTHORIZED"}]}', 401
                    headers = {"WWW-Authenticate": f'Bearer realm="{recorder.realm}",service="hostile"'}
                else:
                    body, status, headers = b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', 404, {}
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_GET

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def basic(self) -> list[str]:
        return [path for path, auth in self.seen if auth.lower().startswith("basic")]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers():
    upstream, realm = Recorder("127.0.0.1"), Recorder("127.0.0.2")
    yield upstream, realm
    upstream.close()
    realm.close()


def pull_through(mirror) -> None:
    for _ in range(4):   # a client retries; each try is a token request more
        requests.get(f"{mirror.url()}/v2/library/bait/manifests/1", timeout=30,
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})


def test_a_plain_http_realm_on_another_host_never_gets_the_credentials(servers, make_mirror):
    upstream, elsewhere = servers
    upstream.realm = f"{elsewhere.url}/token"
    m = make_mirror(upstream.url, DOCKER_MIRROR_DOCKERHUB_USERNAME=USER, DOCKER_MIRROR_DOCKERHUB_PASSWORD=PASSWORD)
    pull_through(m)
    assert elsewhere.seen, "the mirror never asked the realm: the test proves nothing"
    assert elsewhere.basic() == [], elsewhere.seen
    assert upstream.basic() == []


def test_the_upstreams_own_realm_gets_them(servers, make_mirror):
    """The same mirror, with the realm on the upstream's own host: the credentials do go (so the
    test above can fail)."""
    upstream, _ = servers
    upstream.realm = f"{upstream.url}/token"
    m = make_mirror(upstream.url, DOCKER_MIRROR_DOCKERHUB_USERNAME=USER, DOCKER_MIRROR_DOCKERHUB_PASSWORD=PASSWORD)
    pull_through(m)
    assert any(path.startswith("/token") for path in upstream.basic()), upstream.seen
