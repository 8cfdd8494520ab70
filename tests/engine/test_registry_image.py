"""describe() tells distribution 2.x from 3.x by what the image runs."""

import io
import tarfile
import time
import uuid

import pytest

from mirror.config import settings
from mirror.engine import build
from mirror.engine.registry_image import (
    BINARY_LABEL, CONFIG_V2, CONFIG_V3, OFFLINE_LABEL, RegistryImageError, build_offline_image, describe,
    ensure_registry_image,
)
from mirror.errors import MirrorError
from support.configs import write_config


@pytest.fixture
def fake_image(docker_client):
    """Import tiny one-file images with the given Dockerfile changes."""
    made = []

    def make(*changes: str) -> str:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("hello.txt")
            data = b"not really a registry\n"
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        ref = f"docker-mirror-test/fake-{uuid.uuid4().hex[:12]}:x"
        repo, tag = ref.rsplit(":", 1)
        docker_client.api.import_image_from_data(
            buf.getvalue(), repository=repo, tag=tag,
            changes=[*changes, "LABEL docker-mirror-test=1"])
        made.append(ref)
        return ref

    yield make
    for ref in made:
        docker_client.images.remove(ref, force=True)


def test_distribution_3_entrypoint_is_major_3(docker_client, fake_image):
    ref = fake_image(f'ENTRYPOINT ["/bin/registry","serve","{CONFIG_V3}"]')
    found = describe(docker_client, ref)
    assert (found.major, found.config_path, found.built_offline) == (3, CONFIG_V3, False)
    assert found.image_id == docker_client.images.get(ref).id


def test_official_style_cmd_names_the_config(docker_client, fake_image):
    # The official images run /entrypoint.sh with the config path as CMD.
    ref = fake_image('ENTRYPOINT ["/entrypoint.sh"]', f'CMD ["{CONFIG_V2}"]')
    assert describe(docker_client, ref).major == 2


def test_oci_version_label_of_a_distribution_image(docker_client, fake_image):
    ref = fake_image('ENTRYPOINT ["/entrypoint.sh"]',
                     'LABEL org.opencontainers.image.source="https://github.com/distribution/distribution"'
                     ' org.opencontainers.image.version="3.0.0"')
    assert describe(docker_client, ref).config_path == CONFIG_V3


def test_not_a_registry_is_refused(docker_client, fake_image):
    ref = fake_image('ENTRYPOINT ["/bin/true"]', 'LABEL org.opencontainers.image.version="2.8.2"')
    with pytest.raises(MirrorError, match="not a distribution registry image"):
        describe(docker_client, ref)


def test_missing_image_is_a_user_error(docker_client):
    with pytest.raises(RegistryImageError, match="not present locally"):
        describe(docker_client, f"docker-mirror-test/absent-{uuid.uuid4().hex}:1")


def test_local_wanted_image_is_used_without_pulling(docker_client, fake_image):
    ref = fake_image(f'ENTRYPOINT ["/bin/registry","serve","{CONFIG_V3}"]')
    said = []
    found = ensure_registry_image(docker_client, ref, log=said.append)
    assert (found.ref, found.major, said) == (ref, 3, [])


def test_unpullable_image_falls_back_to_the_offline_build(docker_client, debian_registry_image, registry_image):
    # Nothing listens on port 1, so a pull would fail at once, as offline; the
    # offline build made for this session is reused without another try: Debian's
    # binary, as before the engine was built here (a user-chosen image keeps that).
    said = []
    start = time.monotonic()
    found = ensure_registry_image(docker_client, "127.0.0.1:1/library/registry:2", log=said.append)
    assert found == debian_registry_image != registry_image
    assert found.built_offline and found.ref.endswith("-offline")
    assert said == []
    assert time.monotonic() - start < 1.0


def test_no_binary_names_the_fix(docker_client):
    with pytest.raises(RegistryImageError, match="apt-get install docker-registry"):
        build_offline_image(docker_client, "registry:2", binary="/nonexistent/docker-registry")


def test_another_offline_built_image_is_not_taken_for_the_registry(docker_client, debian_registry_image,
                                                                   fake_image):
    # Other tools' offline images (Redis for the replicas) carry the same label;
    # the newest is listed first, so without the name check it would be chosen.
    fake_image(f'LABEL {OFFLINE_LABEL}="true"', 'CMD ["/usr/bin/redis-server"]')
    found = ensure_registry_image(docker_client, "127.0.0.1:1/library/registry:2", log=print)
    assert found == debian_registry_image


def test_the_built_engine_is_the_image_of_this_checkouts_build(docker_client, registry_image, tmp_path):
    made = build.ensure()
    default = settings.load(write_config(tmp_path / ".config")).registry_image   # what make docker-mirror runs
    assert registry_image.ref == build.image_ref(made.key) == default
    assert (registry_image.major, registry_image.config_path, registry_image.built_offline) == (2, CONFIG_V2, True)
    labels = docker_client.images.get(registry_image.ref).labels
    assert labels[build.KEY_LABEL] == made.key
    assert labels[build.DEBIAN_VERSION_LABEL] == made.info["debian_version"]
    assert labels[BINARY_LABEL] == made.info["binary_sha256"]
    # Asked for again (make docker-mirror), it is found, never pulled nor built, and says nothing.
    said = []
    start = time.monotonic()
    assert ensure_registry_image(docker_client, registry_image.ref, log=said.append) == registry_image
    assert said == [] and time.monotonic() - start < 2.0


def test_an_engine_image_of_another_build_that_is_not_here_names_the_fix(docker_client):
    with pytest.raises(RegistryImageError, match="make engine"):
        ensure_registry_image(docker_client, f"{build.IMAGE_REPO}:2.8.2-dm.{'0' * 12}")


def test_an_image_of_another_binary_under_the_same_tag_is_made_again(docker_client, tmp_path):
    # A rebuild keeps the key (and so the tag): the image follows the binary's digest.
    ref = f"docker-mirror-test/engine-{uuid.uuid4().hex[:12]}:2.8.2-dm.x"
    fake = tmp_path / "registry"
    try:
        fake.write_text("#!/bin/sh\necho 'registry github.com/docker/distribution 2.8.2+dm.one'\n")
        fake.chmod(0o755)
        mark = {"x.test": "1"}   # for the clean-up: the first image loses its tag
        first = build_offline_image(docker_client, binary=str(fake), ref=ref, labels=mark)
        assert build_offline_image(docker_client, binary=str(fake), ref=ref, labels=mark).image_id == first.image_id
        fake.write_text(fake.read_text().replace("one", "two"))
        second = build_offline_image(docker_client, binary=str(fake), ref=ref, labels=mark)
        assert second.image_id != first.image_id
        assert docker_client.images.get(ref).labels[BINARY_LABEL] == build.file_sha256(fake)
    finally:
        for image in docker_client.images.list(filters={"label": "x.test=1"}, all=True):
            docker_client.images.remove(image.id, force=True)

