"""The cache's lifecycle on the azure backend: a real Azurite, the engine built here with
distribution's azure driver, real pulls, distribution's own garbage-collect on the container.

An image a client pulled once and nobody since goes two days later (a
ShiftedClock): its links leave the blob container, garbage-collect runs in a
one-shot container against the same account, and the container's blobs lose
the image's own layer, the shared base kept; the kept image still pulls with
the upstream away.
"""

import hashlib

import pytest

from mirror.model.retention import ShiftedClock
from mirror.services import lifecycle, warm
from support import azurite as az
from support.configs import image_list
from support.mirrors import Mirror
from support.replicas import pull
from support.upstream import make_layer, push_image


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with az.service(tmp_path_factory.mktemp("azurite")) as service:
        yield service


def data_blob(digest: str) -> str:
    hex_ = digest.split(":", 1)[1]
    return f"/docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data"


def test_policy_drops_an_image_from_the_blob_container(tmp_path, docker_client, registry_image, azurite, hub):
    shared, dropped_own = make_layer(800_000, "azgc-shared"), make_layer(1_500_000, "azgc-gone")
    kept = push_image(hub.url, "library/kept", "1", layers=[shared, make_layer(500_000, "azgc-kept")])
    dropped = push_image(hub.url, "library/dropped", "1", layers=[shared, dropped_own])
    m = Mirror(tmp_path / "mirror", hub.url, DOCKER_MIRROR_KEEP_UNUSED_DAYS=1,
               DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "library/kept:1"),
               **azurite.mirror_settings("azgc"))
    container = m.settings.storage.azure_container_for("dockerhub")
    try:
        m.setup()
        assert warm.warm(m.settings, log=lambda _: None, client=docker_client, gc=False) == []
        image = docker_client.images.pull(f"127.0.0.1:{m.port}/library/dropped:1")   # a client's pull
        docker_client.images.remove(image.id, force=True)
        own = "sha256:" + hashlib.sha256(dropped_own).hexdigest()
        base = "sha256:" + hashlib.sha256(shared).hexdigest()
        assert azurite.read(container, data_blob(own)) == dropped_own

        clock = ShiftedClock()
        lifecycle.ingest(m.settings, docker_client, clock)   # the pull, read from the log now
        clock.advance(2)
        lines = []
        done = lifecycle.collect(m.settings, docker_client, clock=clock, log=lines.append)
        [gone] = done.plan.evictions
        assert (gone.image.repository, gone.image.digest) == ("library/dropped", dropped), lines
        names = azurite.list(container)
        assert data_blob(own) not in names and data_blob(base) in names
        assert not [n for n in names if "/repositories/library/dropped/" in n], names
        assert done.disk_before["dockerhub"] - done.disk_after["dockerhub"] >= gone.freed >= len(dropped_own)
        assert 0 < done.unavailable["dockerhub"] < 60
        hub.stop()   # the kept image still pulls, from the container alone
        try:
            assert pull(m.url(), "library/kept", "1")[0] == kept
        finally:
            hub.start()
    finally:
        m.remove(docker_client)
