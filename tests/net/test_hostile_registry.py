"""A registry that lies, floods or trickles: mirror.net bounds and checks what it says.

The hostile registry is a real HTTP server on loopback, each test telling it
how to misbehave; the honest one is a real distribution registry.
"""

import hashlib
import http.server
import json
import threading
import time

import pytest

from mirror import errors
from mirror.net import bounded, registry_api
from mirror.net.registry_api import RegistryAPI
from support.upstream import push_image

TRAVERSAL = "sha256:../../../../etc/evil"


def _manifest(layer_digest: str) -> bytes:
    return json.dumps({"schemaVersion": 2,
                       "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": "sha256:" + "a" * 64, "size": 2},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                   "digest": layer_digest, "size": 1}]}).encode()


class Hostile(http.server.ThreadingHTTPServer):
    daemon_threads = True
    behaviour: dict


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        b = self.server.behaviour
        body = b.get("body", b"{}")
        self.send_response(b.get("status", 200))
        self.send_header("Content-Type", b.get("type", "application/vnd.oci.image.manifest.v1+json"))
        for name, value in b.get("headers", {}).items():
            self.send_header(name, value)
        if not b.get("no_length"):
            self.send_header("Content-Length", str(b.get("length", len(body))))
        self.end_headers()
        try:
            if b.get("trickle"):
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(b["trickle"])
            else:
                self.wfile.write(body)
        except OSError:
            pass
        if b.get("no_length"):
            self.close_connection = True

    def do_HEAD(self):
        b = self.server.behaviour
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        for name, value in b.get("headers", {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(b.get("body", b""))))
        self.end_headers()


@pytest.fixture
def hostile():
    server = Hostile(("127.0.0.1", 0), _Handler)
    server.behaviour = {}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def api_of(server, **kw) -> RegistryAPI:
    return RegistryAPI(f"http://127.0.0.1:{server.server_address[1]}", retries=0, **kw)


def test_a_forged_content_digest_header_is_refused(hostile):
    body = _manifest("sha256:" + "b" * 64)
    hostile.behaviour = {"body": body, "headers": {"Docker-Content-Digest": TRAVERSAL}}
    with pytest.raises(errors.DigestMismatch, match="Docker-Content-Digest"):
        api_of(hostile).get_manifest("library/x", "latest")
    # Without the header, the digest is the body's own.
    hostile.behaviour = {"body": body}
    assert api_of(hostile).get_manifest("library/x", "latest").digest == \
        "sha256:" + hashlib.sha256(body).hexdigest()


def test_a_head_trusts_the_header_only_when_it_is_a_digest(hostile):
    hostile.behaviour = {"body": b"{}", "headers": {"Docker-Content-Digest": TRAVERSAL}}
    with pytest.raises(errors.InvalidDigest):
        api_of(hostile).get_manifest("library/x", "latest", method="HEAD")
    good = "sha256:" + "d" * 64
    hostile.behaviour = {"body": b"{}", "headers": {"Docker-Content-Digest": good}}
    assert api_of(hostile).get_manifest("library/x", "latest", method="HEAD").digest == good


def test_a_manifest_digest_is_that_of_its_body_from_a_real_registry(upstream):
    push_image(upstream.url, "library/honest", "1")
    api = RegistryAPI(upstream.url)
    manifest = api.get_manifest("library/honest", "1")
    assert manifest.digest == "sha256:" + hashlib.sha256(manifest.body).hexdigest()
    assert api.get_manifest("library/honest", manifest.digest).body == manifest.body


@pytest.mark.parametrize("digest", [TRAVERSAL, "sha512:" + "a" * 128, "sha256:" + "A" * 64, "", "sha256:abc"])
def test_a_digest_that_is_not_sha256_never_names_a_url(hostile, digest):
    hostile.behaviour = {"body": b"x"}
    api = api_of(hostile)
    for call in (lambda: api.fetch_blob("r", digest), lambda: api.open_blob("r", digest),
                 lambda: api.blob_exists("r", digest), lambda: api.upload_blob("r", digest, b"x")):
        with pytest.raises(errors.InvalidDigest, match="not a digest"):
            call()
    if digest.startswith("sha256:"):
        with pytest.raises(errors.InvalidDigest):
            api.get_manifest("r", digest)


def test_an_oversized_manifest_is_refused_without_reading_it_whole(hostile):
    hostile.behaviour = {"body": b"{" + b" " * (registry_api.MAX_MANIFEST + 10) + b"}"}
    with pytest.raises(errors.ResponseTooLarge, match="at most"):
        api_of(hostile).get_manifest("r", "latest")
    # No Content-Length: the cap still holds while reading.
    hostile.behaviour["no_length"] = True
    with pytest.raises(errors.ResponseTooLarge, match="over"):
        api_of(hostile).get_manifest("r", "latest")


def test_an_error_body_is_capped_and_printable(hostile):
    hostile.behaviour = {"status": 404, "body": b"\x1b[31m" + b"junk " * 40000, "no_length": True}
    with pytest.raises(errors.RegistryAPIError) as caught:
        api_of(hostile).get_manifest("r", "latest")
    assert "HTTP 404" in str(caught.value) and "\x1b" not in str(caught.value)
    assert len(str(caught.value)) < 300


def test_a_trickling_manifest_hits_the_overall_deadline(hostile):
    hostile.behaviour = {"body": _manifest("sha256:" + "b" * 64), "trickle": 0.2}
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceeded, match="within 1 s"):
        api_of(hostile, timeout=1.0).get_manifest("r", "latest")
    assert time.monotonic() - started < 2.0


def test_a_stalled_blob_is_cut_and_a_moving_one_is_not(hostile):
    data = b"y" * 20
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    hostile.behaviour = {"body": data, "trickle": 0.3}   # 6 s in all, 0.3 s per byte
    started = time.monotonic()
    with pytest.raises(errors.RegistryAPIError, match="stalled for 1 s"):
        api_of(hostile, timeout=1.0).fetch_blob("r", digest)
    assert time.monotonic() - started < 2.5
    hostile.behaviour = {"body": data}
    assert api_of(hostile, timeout=1.0).fetch_blob("r", digest) == len(data)


def test_the_upstream_probe_is_bounded_whole(hostile):
    hostile.behaviour = {"body": b"x" * 100, "trickle": 0.5}
    url = f"http://127.0.0.1:{hostile.server_address[1]}"
    started = time.monotonic()
    assert registry_api.upstream_answers(url, timeout=1.5)   # headers came in time
    assert time.monotonic() - started < 1.0


def test_credentials_in_a_url_never_reach_an_error(hostile):
    port = hostile.server_address[1]
    hostile.server_close()
    hostile.shutdown()
    api = RegistryAPI(f"http://bob:hunter2@127.0.0.1:{port}", retries=0, timeout=1)
    with pytest.raises(errors.RegistryAPIError) as caught:
        api.get_manifest("r", "latest")
    assert "hunter2" not in str(caught.value) and "bob" not in str(caught.value)
    assert bounded.display("http://bob:pw@h:5/x") == "http://h:5/x"


def test_basic_credentials_go_to_a_plain_http_realm_only_on_the_registrys_host():
    api = RegistryAPI("http://127.0.0.1:5000", username="u", password="p")
    assert api._sends_credentials_to("http://127.0.0.1:5001/token")
    assert api._sends_credentials_to("https://auth.example/token")
    assert not api._sends_credentials_to("http://auth.example/token")
