"""Every answer of the status page says `X-Content-Type-Options: nosniff`: the served logs
hold text an upstream controls (image names, error text), which a browser must never
sniff into HTML or script. The real server on loopback; no Docker engine needed."""

import pytest
import requests

from mirror.config import settings as settings_mod
from mirror.host.layout import Layout
from support.configs import with_status_page, write_config
from support.mirrors import serve_status_page
from support.upstream import free_port

HOSTILE_LOG = b"<html><script>alert('from an upstream')</script></html>\n"


@pytest.fixture
def page(tmp_path):
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                          DOCKER_MIRROR_PORT=free_port(),
                          DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=f"http://127.0.0.1:{free_port()}")
    settings = with_status_page(settings_mod.load(config))
    logs = Layout.of(settings).logs_dir
    logs.mkdir(parents=True)
    (logs / "update-2026-12-07.log").write_bytes(HOSTILE_LOG)
    server = serve_status_page(settings)
    yield f"http://127.0.0.1:{settings.observe.port}", tmp_path
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path", ["/logs/update-2026-12-07.log", "/metrics", "/logs/nope.log", "/missing"])
def test_every_answer_forbids_sniffing(page, path):
    url, _ = page
    for method in (requests.get, requests.head):
        answer = method(url + path, timeout=10)
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", (path, answer.status_code)


def test_a_served_log_is_plain_text_that_is_never_sniffed(page):
    url, _ = page
    answer = requests.get(url + "/logs/update-2026-12-07.log", timeout=10)
    assert answer.status_code == 200 and answer.content == HOSTILE_LOG
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_the_refusal_of_a_user_forbids_sniffing_too(tmp_path):
    users = tmp_path / "htpasswd"
    users.write_text("alice:$2y$05$" + "a" * 53 + "\n")
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                          DOCKER_MIRROR_PORT=free_port(),
                          DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=f"http://127.0.0.1:{free_port()}",
                          DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(users))
    settings = with_status_page(settings_mod.load(config))
    server = serve_status_page(settings)
    try:
        answer = requests.get(f"http://127.0.0.1:{settings.observe.port}/logs/update-1.log", timeout=10)
        assert answer.status_code == 401 and answer.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        server.shutdown()
        server.server_close()
