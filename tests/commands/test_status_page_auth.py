"""The status service behind the mirror's own htpasswd and TLS: real HTTPS with a certificate
made by openssl, bcrypt entries made by Python's crypt module, Basic auth on every path."""

import subprocess
import threading
import warnings

import pytest
import requests

from mirror.services import observe_serve
from mirror.config import settings as settings_mod
from mirror.host import htpasswd
from support.configs import with_status_page, write_config
from support.upstream import free_port

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt


def bcrypt_entry(user, password) -> str:
    # Apache's htpasswd -B writes $2y$; crypt(3) reads both spellings.
    return f"{user}:" + crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5)).replace(
        "$2b$", "$2y$", 1)


def test_bcrypt_entries_are_checked():
    entry = bcrypt_entry("alice", "wonder land").split(":", 1)[1]
    assert htpasswd.bcrypt_matches("wonder land", entry)
    assert not htpasswd.bcrypt_matches("wonder lan", entry)
    assert not htpasswd.bcrypt_matches("wonder land", "$2y$05$" + "a" * 53)


@pytest.fixture
def secured(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    users = tmp_path / "htpasswd"
    users.write_text(bcrypt_entry("alice", "s3cret pass") + "\n")
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                          DOCKER_MIRROR_PORT=free_port(),
                          DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=f"http://127.0.0.1:{free_port()}",
                          DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(users),
                          DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_CERTIFICATE=str(cert),
                          DOCKER_MIRROR_TLS_KEY=str(key))
    settings = with_status_page(settings_mod.load(config))
    server = observe_serve.make_server(settings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{settings.observe.port}", str(cert)
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path", ["/", "/metrics", "/status.json"])
def test_every_path_asks_for_a_user_over_tls(secured, path):
    url, cert = secured
    refused = requests.get(url + path, verify=cert, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="docker-mirror"'
    assert requests.get(url + path, verify=cert, auth=("alice", "wrong"), timeout=10).status_code == 401
    assert requests.get(url + path, verify=cert, auth=("mallory", "s3cret pass"), timeout=10).status_code == 401
    assert requests.get(url + path, verify=cert, auth=("alice", "s3cret pass"), timeout=10).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(url.replace("https:", "http:") + path, timeout=10)


def test_a_client_that_never_says_hello_holds_no_one_else(secured):
    import socket
    url, cert = secured
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)):       # connected, silent: no TLS handshake
        answer = requests.get(url + "/metrics", verify=cert, auth=("alice", "s3cret pass"), timeout=5)
        assert answer.status_code == 200
