"""Which storage drivers a registry image has: read from the real Debian binary
and the engine built here, and setup refusing a backend whose driver the image
lacks (before any container crash-loops on it): Debian's binary wrapped, what
an unpullable DOCKER_MIRROR_REGISTRY_IMAGE falls back to, has no azure."""

from __future__ import annotations


import pytest

from mirror import render
from mirror.engine import build, storage_drivers
from mirror.engine.registry_image import RegistryImage
from mirror.model import modes as L
from support.mirrors import Mirror

ACCOUNT_KEY = "YXp1cmUtYWNjb3VudC1rZXktbmV2ZXItc2hvd24="  # base64 of a made-up key
AZURE = dict(DOCKER_MIRROR_STORAGE_FILESYSTEM=False, DOCKER_MIRROR_STORAGE_AZURE=True,
             DOCKER_MIRROR_AZURE_ACCOUNT_NAME="dmtestacct", DOCKER_MIRROR_AZURE_ACCOUNT_KEY=ACCOUNT_KEY,
             DOCKER_MIRROR_AZURE_REALM="localhost:1")


def image(built_offline: bool) -> RegistryImage:
    return RegistryImage("docker-mirror/registry:2.8.2-offline", "sha256:" + "0" * 64, 2,
                         "/etc/docker/registry/config.yml", built_offline)


def test_debians_registry_binary_has_no_azure_driver():
    assert storage_drivers.of_binary(storage_drivers.offline_binary()) == {
        "filesystem", "inmemory", "s3", "swift"}


def test_package_paths_of_2x_and_3x_builds_name_their_drivers():
    data = (b"\x00github.com/docker/distribution/registry/storage/driver/azure.(*driver).Stat\x00"
            b"github.com/distribution/distribution/v3/registry/storage/driver/s3-aws.New\x00"
            b"github.com/docker/distribution/registry/storage/driver/base.(*Base).Stat\x00"
            b"github.com/docker/distribution/registry/storage/driver/filesystem/driver.go\x00")
    assert storage_drivers.in_binary(data) == {"azure", "s3", "filesystem"}


def test_a_label_wins_and_only_offline_images_are_read_from_the_binary(tmp_path):
    fake = tmp_path / "registry"
    fake.write_bytes(b"/registry/storage/driver/gcs.New\x00")
    assert storage_drivers.of_image(image(False), {}, str(fake)) is None
    assert storage_drivers.of_image(image(True), {}, str(fake)) == {"gcs"}
    labels = {storage_drivers.LABEL: "azure,filesystem"}
    assert storage_drivers.of_image(image(True), labels, str(fake)) == {"azure", "filesystem"}
    assert storage_drivers.label_value(frozenset({"s3", "azure"})) == "azure,s3"


def test_the_engine_built_here_has_the_azure_driver(docker_client, registry_image):
    # Debian cuts it out (its 0003-no-azure.patch); the build here leaves it in.
    assert "azure" in storage_drivers.of_binary(str(build.ensure().binary))
    labels = docker_client.images.get(registry_image.image_id).labels
    assert set(labels[storage_drivers.LABEL].split(",")) >= {"azure", "s3", "filesystem"}
    storage_drivers.require(docker_client, registry_image, "azure")


def test_the_offline_image_really_panics_on_an_azure_config(tmp_path, docker_client, debian_registry_image,
                                                            upstream):
    """What the check spares users: Debian's registry's own error with the rendered config."""
    registry_image = debian_registry_image
    m = Mirror(tmp_path / "m", upstream.url, **AZURE)
    config = tmp_path / "config.yml"
    config.write_text(render.registry_config(m.settings, m.settings.upstreams[0],
                                             major=registry_image.major, mode=L.PULL_THROUGH,
                                             http_secret="x" * 32))
    container = docker_client.containers.run(
        registry_image.ref, name=f"{m.prefix}-panic", detach=True, network_mode="host",
        volumes={str(config): {"bind": registry_image.config_path, "mode": "ro"}})
    try:
        assert container.wait(timeout=30)["StatusCode"] != 0
        log = container.logs().decode()
        assert "panic: StorageDriver not registered: azure" in log, log
    finally:
        container.remove(force=True)


def test_setup_refuses_azure_on_an_image_without_the_driver(tmp_path, docker_client, debian_registry_image,
                                                            upstream):
    # An upstream image that cannot be pulled here: Debian's binary wrapped stands in for it.
    registry_image = debian_registry_image
    m = Mirror(tmp_path / "m", upstream.url, DOCKER_MIRROR_REGISTRY_BUILT=False,
               DOCKER_MIRROR_REGISTRY_IMAGE="127.0.0.1:1/library/registry:2", **AZURE)
    try:
        result = m.setup(check=False)
        assert result.returncode == 3, result.stdout + result.stderr
        err = result.stderr
        assert "Traceback" not in err
        assert f"{registry_image.ref}, built offline from" in err
        assert "has no azure storage driver (it has filesystem, inmemory, s3, swift)" in err
        assert "StorageDriver not registered: azure" in err
        assert "CONFIG_DOCKER_MIRROR_REGISTRY_BUILT=y" in err and "CONFIG_DOCKER_MIRROR_REGISTRY_IMAGE" in err
        assert ACCOUNT_KEY not in result.stdout + err
        # nothing was started that would crash-loop
        assert docker_client.containers.list(all=True, filters={"name": m.prefix}) == []
    finally:
        m.remove(docker_client)


def test_s3_on_the_image_that_has_it_passes(docker_client, registry_image):
    storage_drivers.require(docker_client, registry_image, "s3")


def test_filesystem_asks_neither_the_engine_nor_the_binary():
    # Every build has its default driver: no client to inspect with, no binary to read.
    storage_drivers.require(None, image(True), "filesystem", binary="/nonexistent/registry")
    with pytest.raises(AttributeError):   # s3 does inspect the image (here: no client)
        storage_drivers.require(None, image(True), "s3", binary="/nonexistent/registry")
