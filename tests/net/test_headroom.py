"""Docker Hub headroom against a fake upstream: a real HTTP server on loopback that answers a
manifest HEAD as Docker Hub does (a bearer challenge, a token, then `ratelimit-*` headers),
which no real registry here sends. Shown by `make docker-mirror-status`."""

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mirror.services import status
from mirror.config import settings as settings_mod
from mirror.net import headroom
from support.configs import write_config

PASSWORD = "s3cret-hub-password"


class FakeHub(BaseHTTPRequestHandler):
    seen: list = []

    def _answer(self, code, headers=(), body=b""):
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        if self.path.startswith("/token"):
            signed_in = self.headers.get("Authorization", "") == "Basic " + base64.b64encode(
                f"hubuser:{PASSWORD}".encode()).decode()
            token = b"signed" if signed_in else b"anonymous"
            return self._answer(200, [("Content-Type", "application/json")], b'{"token": "%s"}' % token)
        return self._answer(404)

    def do_HEAD(self):  # noqa: N802
        FakeHub.seen.append((self.command, self.path))
        auth = self.headers.get("Authorization", "")
        if not self.path.startswith("/v2/ratelimitpreview/test/manifests/"):
            return self._answer(404)
        if not auth.startswith("Bearer "):
            realm = f"http://127.0.0.1:{self.server.server_port}/token"
            return self._answer(401, [("WWW-Authenticate", f'Bearer realm="{realm}",service="registry.docker.io"')])
        limit = 200 if auth == "Bearer signed" else 100
        return self._answer(200, [("ratelimit-limit", f"{limit};w=21600"),
                                  ("ratelimit-remaining", f"{limit - 24};w=21600"),
                                  ("docker-ratelimit-source", "127.0.0.1")])

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeHub.seen = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def settings_for(tmp_path, url, **more):
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                          DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=url, **more)
    return settings_mod.load(config)


def test_anonymous_headroom_from_a_manifest_head(tmp_path, fake_hub):
    found = headroom.headroom(settings_for(tmp_path, fake_hub).upstream("dockerhub"))
    assert (found.limit, found.remaining, found.window_seconds) == (100, 76, 21600)
    assert found.text == "76 of 100 pulls left per 6 h"
    # Only HEADs: a GET of a manifest would count as a pull.
    assert FakeHub.seen and all(method == "HEAD" for method, _ in FakeHub.seen)


def test_signed_in_headroom_uses_the_upstream_credentials(tmp_path, fake_hub):
    settings = settings_for(tmp_path, fake_hub, DOCKER_MIRROR_DOCKERHUB_USERNAME="hubuser",
                            DOCKER_MIRROR_DOCKERHUB_PASSWORD=PASSWORD)
    assert headroom.headroom(settings.upstream("dockerhub")).remaining == 176


def test_status_shows_the_headroom_and_never_the_password(tmp_path, fake_hub):
    settings = settings_for(tmp_path, fake_hub, DOCKER_MIRROR_DOCKERHUB_USERNAME="hubuser",
                            DOCKER_MIRROR_DOCKERHUB_PASSWORD=PASSWORD)
    doc = status.gather(settings, None)
    assert doc["dockerhub_headroom"]["remaining"] == 176
    text = status.format_text(doc)
    assert "Docker Hub headroom: 176 of 200 pulls left per 6 h" in text
    assert PASSWORD not in text


def test_an_upstream_without_the_headers_says_so(tmp_path, fake_hub):
    found = headroom.headroom(settings_for(tmp_path, fake_hub + "/elsewhere").upstream("dockerhub"))
    assert found.remaining is None and "no ratelimit headers" in found.text


def test_an_unreachable_upstream_is_named_without_credentials(tmp_path):
    from support.upstream import free_port
    url = f"http://hubuser:{PASSWORD}@127.0.0.1:{free_port()}"
    found = headroom.headroom(settings_for(tmp_path, url).upstream("dockerhub"))
    assert found.remaining is None and "no answer" in found.error and PASSWORD not in found.error


def test_the_status_service_shows_it_on_its_page_and_in_status_json(tmp_path, fake_hub):
    import requests
    from mirror.services import observe_serve
    from support.configs import with_status_page
    settings = with_status_page(settings_for(tmp_path, fake_hub))
    server = observe_serve.make_server(settings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{settings.observe.port}"
        assert requests.get(f"{base}/status.json", timeout=10).json()["dockerhub_headroom"]["remaining"] == 76
        assert "76 of 100 pulls left per 6 h" in requests.get(f"{base}/", timeout=10).text
        metrics = requests.get(f"{base}/metrics", timeout=10).text
        assert "docker_mirror_dockerhub_ratelimit_remaining 76.0" in metrics
        assert "docker_mirror_dockerhub_ratelimit_limit 100.0" in metrics
    finally:
        server.shutdown()
        server.server_close()
