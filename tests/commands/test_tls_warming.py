"""TLS on, warming on: the mirror's certificate names a LAN host, not 127.0.0.1, and the
refresh still warms through it (the certificate given is pinned, its name not required
to match the address dialled); any other certificate is still refused."""

import subprocess

import pytest

from mirror.errors import RegistryAPIError
from mirror.net.registry_api import RegistryAPI
from support.mirrors import mirror_factory
from support.upstream import UpstreamRegistry, push_image


@pytest.fixture
def make_mirror(tmp_path, docker_client, registry_image):
    with mirror_factory(docker_client, lambda name: tmp_path / name) as make:
        yield make


def certificate(directory, name):
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    key.chmod(0o644)  # the registry container reads it as its own user
    return cert, key


def test_warming_through_a_tls_mirror_whose_certificate_names_a_lan_host(tmp_path, make_mirror):
    cert, key = certificate(tmp_path, "mirror.example")
    other, _ = certificate(tmp_path, "other.example")
    listing = tmp_path / "images.txt"
    listing.write_text("kept:1\n")
    with UpstreamRegistry(tmp_path / "hub") as hub:
        push_image(hub.url, "library/kept", "1")
        m = make_mirror(hub.url, DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_CERTIFICATE=str(cert),
                        DOCKER_MIRROR_TLS_KEY=str(key), DOCKER_MIRROR_IMAGES_EXTRA_LIST=str(listing))
        result = m.run("pull", check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "docker.io/library/kept:1: ok" in result.stdout
        # Pinned to that certificate only: another one, for any name, is refused.
        endpoint = m.settings.upstreams[0].endpoint
        with pytest.raises(RegistryAPIError, match="SSLError"):
            RegistryAPI.of_mirror(endpoint, str(other)).get_manifest("library/kept", "1")
