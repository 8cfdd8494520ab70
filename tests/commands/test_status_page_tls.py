"""The status page says what the text status says of the TLS certificate (EXPIRED, or valid until
a date with the days left, and the warning from 30 days before the end on, styled as one), of the
keeper and of the last and next refresh, every value escaped. The real page server on loopback,
over TLS with the certificate under test (a real one, made here); no Docker engine needed."""

import ipaddress
import json
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mirror.config import settings as settings_mod
from mirror.host.layout import Layout
from support.configs import with_status_page, write_config
from support.mirrors import serve_status_page
from support.upstream import free_port

# A path and refresh text an attacker could shape (a directory name, an upstream's error text).
HOSTILE = "<script>alert(1)</script>&"


def certificate(directory, not_before: datetime, not_after: datetime):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True)
    cert_path, key_path = directory / "mirror.crt", directory / "mirror.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Page(HTMLParser):
    """Each element's text and class by id, and every tag's name, from the served page."""

    def __init__(self):
        super().__init__()
        self.text, self.classes, self.tags, self._open = {}, {}, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.classes[attrs["id"]] = (attrs.get("class") or "").split()
            self.text[attrs["id"]] = ""
            self._open.append((tag, attrs["id"]))
        elif self._open:
            self._open.append((tag, None))

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for _, ident in self._open:
            if ident:
                self.text[ident] += data


def page_for(tmp_path, left: timedelta, **last_refresh) -> tuple[str, Page]:
    """The page of a mirror whose given certificate ends `left` from now, and the parsed page."""
    now = datetime.now(timezone.utc)
    cert, key = certificate(tmp_path / HOSTILE, now - timedelta(days=400), now + left)
    config = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                          DOCKER_MIRROR_PORT=free_port(),
                          DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=f"http://127.0.0.1:{free_port()}",
                          DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_GENERATE=False,
                          DOCKER_MIRROR_TLS_CERTIFICATE=str(cert), DOCKER_MIRROR_TLS_KEY=str(key))
    settings = with_status_page(settings_mod.load(config))
    if last_refresh:
        logs = Layout.of(settings).logs_dir
        logs.mkdir(parents=True)
        Layout.of(settings).last_refresh.write_text(json.dumps(last_refresh))
    server = serve_status_page(settings)
    try:
        # The page is read over the certificate under test, expired or not: what is checked is
        # what the page says of it, so this client does not verify it.
        answer = requests.get(f"https://127.0.0.1:{settings.observe.port}/", verify=False, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == 200 and answer.headers["X-Content-Type-Options"] == "nosniff"
    page = Page()
    page.feed(answer.text)
    return answer.text, page


pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def test_an_expired_certificate_is_a_styled_warning(tmp_path):
    html, page = page_for(tmp_path, -timedelta(days=3), started="2026-12-06T02:00:00Z",
                          finished="2026-12-06T02:01:00Z", result="failed", log="",
                          failed=[f"docker.io/library/{HOSTILE}:1"], error=f"disk full {HOSTILE}")
    assert "EXPIRED on" in page.text["tls"] and "warn" in page.classes["tls"], page.text.get("tls")
    assert "warn" in page.classes["tls-warning"]
    assert re.search(r"the certificate expired on \d{4}-\d{2}-\d{2} \(3 days ago\): clients refuse the mirror",
                     page.text["tls-warning"]), page.text["tls-warning"]
    assert "a given certificate (DOCKER_MIRROR_TLS_CERTIFICATE): replace it" in page.text["tls-warning"]
    # the refresh's failure, as the text status says it
    assert page.text["last-refresh"] == "2026-12-06T02:01:00Z: failed" and "bad" in page.classes["last-refresh"]
    assert HOSTILE in page.text["refresh-failed"] and page.text["refresh-error"] == f"disk full {HOSTILE}"
    assert "not running" in page.text["keeper"] and "bad" in page.classes["keeper"]
    # every hostile value reached the page as text, none as markup
    assert "script" not in page.tags and "<script>" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;&amp;") >= 3   # path, failed, error


def test_a_certificate_with_more_than_30_days_left_is_no_warning(tmp_path):
    _, page = page_for(tmp_path, timedelta(days=90, hours=1))
    assert re.search(r"valid until \d{4}-\d{2}-\d{2} \(90 days\), for IP:127\.0\.0\.1$", page.text["tls"]), page.text["tls"]
    assert "warn" not in page.classes["tls"] and "tls-warning" not in page.text
    assert page.text["last-refresh"] == "never" and "next-refresh" in page.text


def test_a_certificate_within_30_days_of_its_end_warns(tmp_path):
    _, page = page_for(tmp_path, timedelta(days=12, hours=1))
    assert "(12 days)" in page.text["tls"] and "warn" in page.classes["tls"]
    assert "expires on" in page.text["tls-warning"] and "in 12 days" in page.text["tls-warning"]
