"""Warming, archiving and restoring on the azure backend (real Azurite, the product's engine).

No file to wait for on azure: warming waits for each blob's data and its
repository's link in the upstream's container (mirror.net.azure_blob), so a
layer shared by several repositories is linked for each and every image is
served with the upstream gone. Archive and restore go through registries on
the containers, not through files on disk.
"""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from mirror.services import archive, restore

from mirror.services import warm
from mirror.model.manifests import blobs_of
from mirror.net import azure_blob
from mirror.net.registry_api import RegistryAPI
from support import azurite as az
from support.configs import image_list
from support.mirrors import Mirror
from support.replicas import pull
from support.upstream import make_layer, push_image


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with az.service(tmp_path_factory.mktemp("azurite")) as service:
        yield service


@pytest.fixture
def azure_mirror(tmp_path, docker_client, registry_image, azurite, hub):
    m = Mirror(tmp_path / "mirror", hub.url, **azurite.mirror_settings(f"dm{uuid.uuid4().hex[:10]}"))
    yield m
    m.remove(docker_client)


def test_pull_streams_every_blob_into_the_container_for_each_repository(tmp_path, azure_mirror, azurite, hub):
    m = azure_mirror
    base = make_layer(4_000_000, "az-shared-base")
    names = [f"library/azapp{n}" for n in range(4)]
    digests = {name: push_image(hub.url, name, "1", layers=[base, make_layer(100_000, f"az-{n}")])
               for n, name in enumerate(names)}
    m.configure(DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, *(f"{n}:1" for n in names)))
    m.setup()
    result = m.run("pull")   # `make docker-mirror-pull`
    assert all(f"docker.io/{name}:1: ok" in result.stdout for name in names), result.stdout
    # Done means stored: every blob's data and each repository's link are in the container
    # when the command returns (no waiting here).
    container = m.settings.storage.azure_container_for("dockerhub")
    stored = set(azurite.list(container))
    for name in names:
        manifest = RegistryAPI(m.url()).get_manifest(name, "1")
        for blob in blobs_of(json.loads(manifest.body)):
            hex_ = blob["digest"].split(":", 1)[1]
            assert f"/docker/registry/v2/repositories/{name}/_layers/sha256/{hex_}/link" in stored, name
            assert f"/docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data" in stored
    # What the warm engine reads: the same, through the product's own signed requests.
    store = azure_blob.Container(m.settings.storage, "dockerhub")
    layer = blobs_of(json.loads(RegistryAPI(m.url()).get_manifest(names[0], "1").body))[-1]
    assert store.linked(names[0], layer["digest"])
    assert store.size(store.data_key(layer["digest"])) == layer["size"]
    assert not store.linked("library/never-pulled", layer["digest"])
    # A second run finds everything stored: nothing is fetched again.
    again = m.run("pull").stdout
    assert all(f"docker.io/{name}:1: ok" in again for name in names) and "fetched 0 B" in again, again

    hub.stop()
    assert "docker.io: offline mirror" in m.setup().stdout
    for name in names:
        served, blobs = pull(m.url(), name, "1", attempts=1)
        assert served == digests[name] and len(blobs) == 3


def test_archive_from_one_container_prefix_restores_into_another(tmp_path, azure_mirror, docker_client,
                                                                  azurite, hub):
    m = azure_mirror
    digest = push_image(hub.url, "library/azarch", "1", layers=[make_layer(300_000, "az-arch")])
    m.configure(DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "azarch:1"))
    m.setup()
    assert warm.warm(m.settings, log=lambda _: None, client=docker_client) == []
    assert archive.archive_images(m.settings, log=lambda _: None) == []
    fresh = Mirror(tmp_path / "fresh", hub.url, **{**m.overrides,
                                                   "DOCKER_MIRROR_AZURE_CONTAINER": f"dm{uuid.uuid4().hex[:10]}"})
    fresh_container = fresh.settings.storage.azure_container_for("dockerhub")
    try:
        shutil.copytree(m.root / "images/archives", fresh.root / "images/archives")
        lines = []
        assert restore.restore(fresh.settings, docker_client, log=lines.append) == [], lines
        assert any(n.startswith("/docker/registry/v2/repositories/library/azarch/")
                   for n in azurite.list(fresh_container))
        hub.stop()
        assert "docker.io: offline mirror" in fresh.setup().stdout
        served, blobs = pull(fresh.url(), "library/azarch", "1", attempts=1)
        assert served == digest and len(blobs) == 2
    finally:
        fresh.remove(docker_client)

