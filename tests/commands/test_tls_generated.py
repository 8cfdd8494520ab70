"""Generated TLS on a real mirror: setup makes the CA and certificate, the registry serves
the chain, a client trusting only the CA verifies it by 127.0.0.1 and the client address,
the product's own warming goes through it, and a new client address re-issues the
certificate (the container re-created to serve it) while the CA stays."""

import socket
import ssl

from mirror.services import install
from mirror.config import settings as settings_mod
from mirror.host import tls
from support.mirrors import mirror_factory
from support.upstream import UpstreamRegistry, push_image

import pytest


@pytest.fixture
def make_mirror(tmp_path, docker_client, registry_image):
    with mirror_factory(docker_client, lambda name: tmp_path / name) as make:
        yield make


def served_names(port, ca_file, server_name):
    """The served leaf's DNS names, after a handshake that verifies `server_name` against the CA."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as sock:
            return {v for k, v in sock.getpeercert()["subjectAltName"] if k == "DNS"}


def test_generated_tls_serves_warms_and_follows_the_client_address(tmp_path, make_mirror, docker_client):
    listing = tmp_path / "images.txt"
    listing.write_text("kept:1\n")
    with UpstreamRegistry(tmp_path / "hub") as hub:
        push_image(hub.url, "library/kept", "1")
        m = make_mirror(hub.url, DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_CLIENT_ADDRESS="mirror.lan",
                        DOCKER_MIRROR_IMAGES_EXTRA_LIST=str(listing))
        assert m.settings.tls_generate
        files = tls.TlsFiles.under(m.settings.path)
        assert files.ca_key.stat().st_mode & 0o777 == 0o600
        assert {"mirror.lan", "localhost"} <= served_names(m.port, files.ca_cert, "mirror.lan")
        served_names(m.port, files.ca_cert, "127.0.0.1")
        with pytest.raises(ssl.SSLCertVerificationError):
            served_names(m.port, files.ca_cert, "elsewhere.lan")

        shown = m.run("status", check=False).stdout
        assert f"TLS: generated certificate {files.server_cert}, valid until" in shown
        assert "DNS:mirror.lan" in shown and f"clients trust the CA {files.ca_cert}" in shown

        result = m.run("pull", check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "docker.io/library/kept:1: ok" in result.stdout

        ca, before = files.ca_cert.read_bytes(), m.container(docker_client).id
        m.configure(DOCKER_MIRROR_CLIENT_ADDRESS="moved.lan")
        said = []
        install.start_mirrors(settings_mod.load(m.config), docker_client, log=said.append)
        assert any("adds DNS:moved.lan; drops DNS:mirror.lan" in line for line in said), said
        assert m.container(docker_client).id != before
        assert "moved.lan" in served_names(m.port, files.ca_cert, "moved.lan")
        assert files.ca_cert.read_bytes() == ca

        # nothing changed: nothing issued, the container kept
        kept = m.container(docker_client).id
        said.clear()
        install.start_mirrors(settings_mod.load(m.config), docker_client, log=said.append)
        assert not any("issued" in line for line in said) and m.container(docker_client).id == kept
