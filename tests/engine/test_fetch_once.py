"""Downloaded once, used many times: what a cold pull through the mirror costs on its upstream link.

Each test starts a fresh mirror (the product's containers) whose upstream is
reached through a shared link (support/link.py) that counts every byte and
every request crossing it, pulls a cold image through the mirror with real
clients, and checks the link: one upstream GET per blob, and bytes within the
target of the image's blob bytes. What else crosses (every answer's headers,
the manifests, the /v2/ pings) is counted request by request on the link, and
each of those answers is checked to be no bigger than the manifest, so no
blob can hide in it.

Not timed. The link's rate only keeps a blob on its way long enough for a
client to hang up in the middle of it; when 8 clients pull at once, the link
holds the blob back until all 8 have asked for it.
"""

import hashlib
import uuid

import pytest
import requests

from support.fetch_once import describe, fetches, image_bytes, pull_at_once, pull_met_in_flight, wait_stored
from support.link import SharedLink
from support.mirrors import mirror_factory
from support.upstream import make_layer, push_image

pytestmark = pytest.mark.engine

MB = 1_000_000
RATE = 20 * MB          # 8 MB of blob: 0.4 s on its way
LAYER = 8 * MB
ONE_CLIENT, AT_ONCE = 1.02, 1.05
HANG_UP_READ = 16 * 1024
STORE_WAIT = 15.0       # 0.4 s of transfer, and a busy machine


@pytest.fixture
def link(upstream):
    with SharedLink(("127.0.0.1", upstream.port), rate_bytes=RATE) as shared:
        yield shared


@pytest.fixture
def cold_mirror(tmp_path, docker_client, registry_image, link):
    """A fresh mirror whose upstream is the link; the link's counts start after its start-up."""
    with mirror_factory(docker_client, lambda name: tmp_path / name) as make:
        mirror = make(link.url)
        link.reset()
        yield mirror


def new_image(upstream, repository, *sizes):
    """An image of random layers nobody has seen (not this host's Docker either)."""
    seed = uuid.uuid4().hex
    layers = [make_layer(size, f"{seed}-{n}") for n, size in enumerate(sizes)]
    tag = seed[:12]
    push_image(upstream.url, repository, tag, layers=layers)
    return image_bytes(upstream.url, repository, tag), layers


def check_fetched_once(counts, image, factor):
    text = describe(counts, image)
    for request in counts.requests:
        if request.blob() is None:
            assert request.body_bytes <= image.manifest_size, \
                f"{request.method} {request.path}: {request.body_bytes} B, more than a manifest: {text}"
    assert counts.blob_body_bytes >= image.blob_bytes, f"the image did not come through the link: {text}"
    assert fetches(counts, image) == {digest: 1 for digest in image.blobs}, text
    assert counts.bytes_down <= factor * image.blob_bytes + counts.overhead, text


def test_one_docker_pull_fetches_each_blob_once(upstream, link, cold_mirror, docker_client):
    image, _ = new_image(upstream, "library/postgres", 6 * MB, 2 * MB)
    ref = f"127.0.0.1:{cold_mirror.port}/{image.repository}"
    try:
        docker_client.images.pull(ref, tag=image.tag)
    finally:
        try:
            docker_client.images.remove(f"{ref}:{image.tag}", force=True)
        except Exception:  # not pulled: the assertion below says why
            pass
    check_fetched_once(link.counts(), image, ONE_CLIENT)


def test_eight_clients_at_once_fetch_each_blob_once(upstream, link, cold_mirror, tmp_path):
    image, _ = new_image(upstream, "vllm/vllm-openai", LAYER)
    pull_met_in_flight(cold_mirror.port, link, image, [tmp_path / f"client-{n}" for n in range(8)])
    check_fetched_once(link.counts(), image, AT_ONCE)
    layer = image.biggest
    for n in range(8):
        assert hashlib.sha256((tmp_path / f"client-{n}" / layer[7:]).read_bytes()).hexdigest() == layer[7:]


def test_a_client_hanging_up_mid_blob_still_stores_it_and_the_next_pull_fetches_nothing(
        upstream, link, cold_mirror, tmp_path):
    image, [layer] = new_image(upstream, "milvusdb/milvus", LAYER)
    digest = image.biggest
    with requests.get(f"{cold_mirror.url()}/v2/{image.repository}/blobs/{digest}", stream=True,
                      timeout=30) as answer:
        assert answer.status_code == 200
        assert len(answer.raw.read(HANG_UP_READ)) == HANG_UP_READ
    # hung up: the mirror goes on storing the blob from the one fetch it started
    missing = wait_stored(cold_mirror.storage(), image.repository, [digest], STORE_WAIT)
    hang_up = link.reset()

    pull_at_once(cold_mirror.url().split("//")[1], image, [tmp_path / "next"])
    after = link.counts()
    story = f"while the client hung up: {describe(hang_up, image)}; then the next pull: {describe(after, image)}"
    assert not missing, f"{digest} not stored {STORE_WAIT:.0f} s after the client hung up; {story}"
    assert (tmp_path / "next" / digest[7:]).read_bytes() == layer
    assert fetches(hang_up, image)[digest] == 1, story
    assert hang_up.blob_body_bytes <= ONE_CLIENT * len(layer), story
    assert fetches(after, image)[digest] == 0, story
