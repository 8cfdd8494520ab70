"""Warming while the upstream is away: an image the mirror never cached is reported as
'upstream unreachable', not as the mirror's 404 MANIFEST_UNKNOWN (real upstream, real mirror)."""

import pytest

from support.mirrors import mirror_factory
from support.upstream import UpstreamRegistry, push_image


@pytest.fixture
def make_mirror(tmp_path, docker_client, registry_image):
    with mirror_factory(docker_client, lambda name: tmp_path / name) as make:
        yield make


def test_an_uncached_image_with_the_upstream_down_says_so(tmp_path, make_mirror):
    hub = UpstreamRegistry(tmp_path / "hub").start()
    try:
        push_image(hub.url, "library/kept", "1")
        listing = tmp_path / "images.txt"
        listing.write_text("kept:1\n")
        m = make_mirror(hub.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=str(listing))
        assert m.run("pull").returncode == 0
    finally:
        hub.stop()
    listing.write_text("library/never:1\n")
    result = m.run("pull", check=False)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "docker.io/library/never:1: FAILED" in line)
    assert f"upstream {hub.url} unreachable, and the mirror has no copy" in line
