"""The generated CA and server certificate on disk: made once, keys 0600, issued again when
the names or the date call for it, the CA never replaced; checked with openssl itself."""

import dataclasses
import os
import socket
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from mirror.config import settings as settings_mod
from mirror.errors import HostError
from mirror.host import tls
from mirror.model.tls import SERVER_DAYS
from support.configs import write_config


@pytest.fixture
def generated(tmp_path):
    path = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(tmp_path / "m"),
                        DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_BIND_ADDRESS="198.18.7.1",
                        DOCKER_MIRROR_CLIENT_ADDRESS="mirror.lan")
    return settings_mod.load(path)


def openssl(*argv):
    return subprocess.run(["openssl", *argv], capture_output=True, text=True)


def test_made_once_with_keys_0600_and_a_chain_openssl_verifies(generated):
    os.umask(0o022)
    said = tls.ensure(generated)
    files = tls.TlsFiles.under(generated.path)
    assert any("made a CA" in line for line in said) and any("issued" in line for line in said)
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files.directory.iterdir()} == {
        "ca.crt": "0o644", "ca.key": "0o600", "server.crt": "0o644", "server.key": "0o600"}
    for name in ("mirror.lan", socket.gethostname().lower(), "localhost"):
        checked = openssl("verify", "-CAfile", str(files.ca_cert), "-verify_hostname", name, str(files.server_cert))
        assert checked.returncode == 0, checked.stdout + checked.stderr
    for ip in ("198.18.7.1", "127.0.0.1", "::1"):
        checked = openssl("verify", "-CAfile", str(files.ca_cert), "-verify_ip", ip, str(files.server_cert))
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert openssl("verify", "-CAfile", str(files.ca_cert), "-verify_ip", "198.18.7.2",
                   str(files.server_cert)).returncode != 0
    text = openssl("x509", "-in", str(files.server_cert), "-noout", "-text").stdout
    assert "CA:FALSE" in text and "TLS Web Server Authentication" in text
    assert "CA:TRUE" in openssl("x509", "-in", str(files.ca_cert), "-noout", "-text").stdout
    # server.crt carries the CA after the leaf: the chain the registry serves
    assert files.server_cert.read_text().count("BEGIN CERTIFICATE") == 2
    before = {p.name: p.read_bytes() for p in files.directory.iterdir()}
    assert tls.ensure(generated) == []
    assert {p.name: p.read_bytes() for p in files.directory.iterdir()} == before


def test_new_names_or_a_near_end_issue_again_and_the_ca_stays(generated):
    tls.ensure(generated)
    files = tls.TlsFiles.under(generated.path)
    ca, ca_key, server = files.ca_cert.read_bytes(), files.ca_key.read_bytes(), files.server_cert.read_bytes()

    moved = dataclasses.replace(generated, client_address="other.lan")
    said = tls.ensure(moved)
    assert said == [line for line in said if "issued" in line] and "adds DNS:other.lan; drops DNS:mirror.lan" in said[0]
    assert files.server_cert.read_bytes() != server
    assert (files.ca_cert.read_bytes(), files.ca_key.read_bytes()) == (ca, ca_key)
    assert openssl("verify", "-CAfile", str(files.ca_cert), "-verify_hostname", "other.lan",
                   str(files.server_cert)).returncode == 0

    server = files.server_cert.read_bytes()
    assert tls.ensure(moved, now=datetime.now(timezone.utc) + timedelta(days=SERVER_DAYS - 40)) == []
    later = tls.ensure(moved, now=datetime.now(timezone.utc) + timedelta(days=SERVER_DAYS - 10))
    assert "expires on" in later[0] and files.server_cert.read_bytes() != server
    assert files.ca_cert.read_bytes() == ca


def test_a_loose_key_mode_is_put_back(generated):
    tls.ensure(generated)
    files = tls.TlsFiles.under(generated.path)
    files.server_key.chmod(0o644)
    files.ca_key.chmod(0o640)
    tls.ensure(generated)
    assert (files.server_key.stat().st_mode & 0o777, files.ca_key.stat().st_mode & 0o777) == (0o600, 0o600)


def test_half_a_ca_is_never_replaced(generated):
    tls.ensure(generated)
    files = tls.TlsFiles.under(generated.path)
    files.ca_key.unlink()
    ca = files.ca_cert.read_bytes()
    with pytest.raises(HostError, match="ca.key must both be there"):
        tls.ensure(generated)
    assert files.ca_cert.read_bytes() == ca


def test_a_server_certificate_from_another_ca_is_issued_again(generated, tmp_path):
    tls.ensure(generated)
    files = tls.TlsFiles.under(generated.path)
    other = dataclasses.replace(generated, path=str(tmp_path / "other"))
    tls.ensure(other)
    foreign = tls.TlsFiles.under(other.path)
    files.server_cert.write_bytes(foreign.server_cert.read_bytes())
    files.server_key.write_bytes(foreign.server_key.read_bytes())
    said = tls.ensure(generated)
    assert "not signed by the CA" in said[0]
    assert openssl("verify", "-CAfile", str(files.ca_cert), str(files.server_cert)).returncode == 0


def test_tls_given_or_off_makes_nothing(tmp_path):
    path = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(tmp_path / "m"))
    assert tls.ensure(settings_mod.load(path)) == []
    assert not (tmp_path / "m" / "tls").exists()


def test_status_says_mode_names_and_end(generated):
    assert tls.status(generated)["error"] == "not made yet: 'make docker-mirror' makes it"
    tls.ensure(generated)
    now = datetime.now(timezone.utc)
    said = tls.status(generated, now)
    assert said["mode"] == "generated" and said["ca"].endswith("/tls/ca.crt")
    assert {"DNS:mirror.lan", "IP:198.18.7.1", "IP:127.0.0.1", "DNS:localhost"} <= set(said["names"])
    assert said["days_left"] in (SERVER_DAYS - 1, SERVER_DAYS)
    assert tls.status(dataclasses.replace(generated, tls_certificate=None, tls_key=None, tls_ca=None,
                                          tls_generate=False, upstreams=())) is None


def test_a_server_key_that_is_not_the_certificates_is_issued_again(generated):
    # The key is written before the certificate: a run stopped between the two leaves
    # a new key beside the old certificate, which the registry cannot serve with.
    tls.ensure(generated)
    files = tls.TlsFiles.under(generated.path)
    key = tls.ec.generate_private_key(tls.ec.SECP256R1())
    files.server_key.write_bytes(tls._key_pem(key))
    said = tls.ensure(generated)
    assert said and "the server key beside it is not the key of it" in said[0]
    leaf = tls.x509.load_pem_x509_certificates(files.server_cert.read_bytes())[0]
    served = tls.serialization.load_pem_private_key(files.server_key.read_bytes(), password=None)
    assert leaf.public_key().public_numbers() == served.public_key().public_numbers()
