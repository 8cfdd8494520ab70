"""DOCKER_MIRROR_STORAGE_CA_BUNDLE: checked once in settings, mounted read-only into
the registry containers, a changed file re-creates them (their hash moves)."""

from __future__ import annotations

import pytest

from mirror.config import settings
from mirror.engine import containers
from mirror.engine.registry_image import CONFIG_V2, RegistryImage
from mirror.errors import ConfigError
from mirror.host.layout import Layout
from mirror.model import modes as L
from support.azurite import throwaway_ca_and_cert
from support.configs import write_config

S3 = {"DOCKER_MIRROR_STORAGE_FILESYSTEM": False, "DOCKER_MIRROR_STORAGE_S3": True,
      "DOCKER_MIRROR_S3_ENDPOINT": "https://127.0.0.1:8443", "DOCKER_MIRROR_S3_BUCKET": "cache",
      "DOCKER_MIRROR_S3_ACCESS_KEY_ID": "AKID", "DOCKER_MIRROR_S3_SECRET_KEY": "secret"}
AZURE = {"DOCKER_MIRROR_STORAGE_FILESYSTEM": False, "DOCKER_MIRROR_STORAGE_AZURE": True,
         "DOCKER_MIRROR_AZURE_ACCOUNT_NAME": "acct", "DOCKER_MIRROR_AZURE_ACCOUNT_KEY": "c2VjcmV0"}
IMAGE = RegistryImage("docker-mirror/registry:2.8.2-offline", "sha256:" + "1" * 64, 2, CONFIG_V2, True)


@pytest.fixture
def ca(tmp_path):
    return throwaway_ca_and_cert(tmp_path / "tls", "127.0.0.1")[0]


def load(tmp_path, backend=S3, **overrides):
    return settings.load(write_config(tmp_path / ".config", **{**backend, **overrides}))


@pytest.mark.parametrize("backend", [S3, AZURE], ids=["s3", "azure"])
def test_a_pem_bundle_is_taken(tmp_path, ca, backend):
    s = load(tmp_path, backend, DOCKER_MIRROR_STORAGE_CA_BUNDLE=str(ca))
    assert s.storage.ca_bundle == str(ca)


def test_none_by_default_and_ignored_on_the_filesystem_backend(tmp_path, ca):
    assert load(tmp_path).storage.ca_bundle == ""
    s = settings.load(write_config(tmp_path / ".config", olddefconfig=True,
                                   DOCKER_MIRROR_STORAGE_CA_BUNDLE=str(ca)))
    assert s.storage.backend == "filesystem" and s.storage.ca_bundle == ""


@pytest.mark.parametrize("content,allowed", [
    (None, "must be a readable PEM file of CA certificates (No such file or directory)"),
    (b"not a certificate\n", "none could be read from it"),
    (b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
     "none could be read from it"),
])
def test_a_bad_bundle_is_refused_naming_symbol_file_and_line(tmp_path, content, allowed):
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, DOCKER_MIRROR_STORAGE_CA_BUNDLE=str(path))
    err = str(caught.value)
    assert "CONFIG_DOCKER_MIRROR_STORAGE_CA_BUNDLE" in err and str(path) in err and allowed in err
    lines = (tmp_path / ".config").read_text().splitlines()
    line = next(i for i, t in enumerate(lines, 1) if t.startswith("CONFIG_DOCKER_MIRROR_STORAGE_CA_BUNDLE="))
    assert f".config:{line}" in err


def test_a_relative_path_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="absolute path"):
        load(tmp_path, DOCKER_MIRROR_STORAGE_CA_BUNDLE="ca.pem")


def test_the_bundle_is_mounted_read_only_and_its_content_is_in_the_hash(tmp_path, ca):
    s = load(tmp_path, DOCKER_MIRROR_STORAGE_CA_BUNDLE=str(ca),
             DOCKER_MIRROR_PATH=str(tmp_path / "mirror"))
    plan = lambda: containers.plan(s, Layout.of(s), IMAGE, {"dockerhub": L.PULL_THROUGH}, "x" * 32)[0]
    spec = plan()
    assert (str(ca), containers.CONTAINER_STORAGE_CA, True) in spec.mounts
    assert containers.CONTAINER_STORAGE_CA.startswith("/etc/ssl/certs/")
    before = spec.config_hash
    assert plan().config_hash == before
    ca.write_bytes(throwaway_ca_and_cert(tmp_path / "other", "127.0.0.1")[0].read_bytes())
    assert plan().config_hash != before
    without = load(tmp_path, DOCKER_MIRROR_PATH=str(tmp_path / "mirror"))
    mounts = containers.plan(without, Layout.of(without), IMAGE, {"dockerhub": L.PULL_THROUGH},
                             "x" * 32)[0].mounts
    assert not any(target == containers.CONTAINER_STORAGE_CA for _, target, _ in mounts)
