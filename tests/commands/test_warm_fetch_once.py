"""The warm on the engine built here (the fetch-once patch): every blob read through once, the end
of its body meaning "stored", a refused digest told as such, stalls caught, a broken transfer
tried again; and on an engine without the patch (Debian's build), the careful way, still correct
and still telling a refused digest from a stall.

Real registries, the product's real mirror containers, a real shared link counting what crosses it.
"""

import hashlib
import threading
import time

import requests

from mirror.services import warm, warm_engine
from mirror.config import image_lists
from mirror.host import storage
from mirror.model import manifests
from mirror.net.registry_api import RegistryAPI
from support.configs import image_list
from support.link import SharedLink
from support.upstream import make_layer, push_image

MB = 1_000_000


def blobs_of_image(url: str, repository: str, tag: str) -> dict[str, int]:
    manifest = RegistryAPI(url).get_manifest(repository, tag)
    return {d["digest"]: d["size"] for d in manifests.blobs_of(manifest.json)}


def stored_whole(storage_dir, repository: str, digest: str) -> bool:
    """The blob is linked for `repository` and its stored bytes hash to its digest."""
    if not storage.blob_linked(storage_dir, repository, digest):
        return False
    return "sha256:" + hashlib.sha256(storage.blob_data(storage_dir, digest).read_bytes()).hexdigest() == digest


def corrupt(hub, digest: str) -> None:
    """Flip one byte of a blob in the upstream's own storage: same size, another digest."""
    data = storage.blob_data(hub.storage, digest)
    body = bytearray(data.read_bytes())
    body[len(body) // 2] ^= 0xFF
    data.write_bytes(bytes(body))


def test_the_engine_built_here_is_told_from_its_labels(tmp_path, hub, make_mirror, docker_client,
                                                       debian_registry_image):
    built = make_mirror(hub.url, "built")
    debian = make_mirror(hub.url, "debian", DOCKER_MIRROR_REGISTRY_BUILT=False,
                         DOCKER_MIRROR_REGISTRY_IMAGE=debian_registry_image.ref)
    assert warm.fetches_once(built.settings, docker_client)
    assert not warm.fetches_once(debian.settings, docker_client)
    assert not warm.fetches_once(built.settings, None)   # no engine to ask: the careful way


def test_each_blob_crosses_the_link_once_and_done_means_stored(tmp_path, hub, make_mirror, docker_client):
    base = make_layer(1_500_000, "once-base")
    names = ["library/once-a", "library/once-b", "library/once-c"]
    for n, name in enumerate(names):
        push_image(hub.url, name, "1", layers=[base, make_layer(600_000 + n * 300_000, f"once-own-{n}")])
    wanted = {name: blobs_of_image(hub.url, name, "1") for name in names}
    unique = {d: s for blobs in wanted.values() for d, s in blobs.items()}
    with SharedLink(("127.0.0.1", hub.port), rate_bytes=20 * MB, latency=0.005) as link:
        m = make_mirror(link.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, *(f"{n}:1" for n in names)))
        lines = []
        link.reset()
        assert warm.warm(m.settings, log=lines.append, client=docker_client, gc=False) == [], lines
        counts = link.counts()
    # Nothing waited for after the run: the end of each body was the mirror's "stored".
    for name, blobs in wanted.items():
        for digest in blobs:
            assert stored_whole(m.storage(), name, digest), (name, digest)
    gets = counts.blob_gets()
    assert set(gets) == set(unique)
    assert all(len(g) == 1 for g in gets.values()), {d[:19]: len(g) for d, g in gets.items()}
    assert counts.blob_body_bytes == sum(unique.values())
    assert counts.bytes_down <= 1.02 * sum(unique.values())
    assert not any("may fetch twice" in line for line in lines), lines


def test_a_digest_the_mirror_refuses_fails_its_image_alone_and_quickly(tmp_path, hub, make_mirror, docker_client):
    push_image(hub.url, "library/fine", "1", layers=[make_layer(800_000, "fine-own")])
    bad_layer = make_layer(2_000_000, "bad-own")
    push_image(hub.url, "library/bad", "1", layers=[bad_layer])
    bad_digest = "sha256:" + hashlib.sha256(bad_layer).hexdigest()
    corrupt(hub, bad_digest)
    m = make_mirror(hub.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "bad:1", "fine:1"))
    lines = []
    start = time.monotonic()
    failed = warm.warm(m.settings, log=lines.append, client=docker_client, gc=False)
    elapsed = time.monotonic() - start
    assert failed == ["docker.io/library/bad:1"], lines
    [said] = [line for line in lines if "docker.io/library/bad:1: FAILED" in line]
    assert "does not match its digest" in said and bad_digest in said, said
    assert "stalled" not in said and "gone" not in said and "nothing for" not in said, said
    assert elapsed < warm_engine.STALL_TIMEOUT, f"{elapsed:.1f} s: waited for a stall"
    assert any("docker.io/library/fine:1: ok" in line for line in lines), lines
    # Nothing stored under the digest, and the mirror never serves the wrong bytes whole.
    assert not storage.blob_data(m.storage(), bad_digest).exists()
    try:
        answer = requests.get(f"{m.url()}/v2/library/bad/blobs/{bad_digest}", timeout=30)
        served_whole = answer.status_code == 200
    except requests.RequestException:   # the body broken off before its end: what the engine does
        served_whole = False
    assert not served_whole


def test_a_stalled_upstream_is_a_stall_and_a_transfer_cut_once_is_tried_again(tmp_path, hub, make_mirror):
    big = make_layer(4_000_000, "stall-big")
    push_image(hub.url, "library/stall", "1", layers=[big])
    big_digest = "sha256:" + hashlib.sha256(big).hexdigest()
    with SharedLink(("127.0.0.1", hub.port), rate_bytes=2_000_000) as link:
        m = make_mirror(link.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "stall:1"))
        wanted = image_lists.wanted_images(m.settings)[0]

        link.hold(big_digest)   # the upstream answers everything but this blob's body
        engine = warm_engine.Engine(m.settings, log=lambda _: None, fetch_once=True, stall_timeout=2)
        start = time.monotonic()
        [stalled] = engine.run(wanted)
        waited = time.monotonic() - start
        link.release()
        assert not stalled.ok and "sent nothing for 2 s" in stalled.error, stalled.error
        assert waited < 5, f"a stall of 2 s caught after {waited:.1f} s"

        # The released fetch goes on for 2 s: this run joins it, and the link is cut under both
        # once: the warm tries the blob again, and the second try completes it.
        link.reset()
        timer = threading.Timer(1.0, link.cut)
        timer.start()
        lines = []
        [cut_once] = warm_engine.Engine(m.settings, log=lines.append, fetch_once=True, stall_timeout=3).run(wanted)
        timer.join()
        assert cut_once.ok, (cut_once.error, lines)
        [retried] = [line for line in lines if "trying again" in line]
        assert "transfer broke" in retried and f"attempt 2 of {warm_engine.BLOB_ATTEMPTS}" in retried, lines
    assert stored_whole(m.storage(), "library/stall", big_digest)


def test_a_transfer_that_keeps_breaking_fails_after_its_tries_and_stores_nothing(tmp_path, hub, make_mirror,
                                                                                monkeypatch):
    # A blob over EXPLAIN_MAX is not fetched again from the upstream only to tell why it failed.
    monkeypatch.setattr(warm_engine, "EXPLAIN_MAX", 1_000_000)
    big = make_layer(4_000_000, "cut-big")
    push_image(hub.url, "library/cut", "1", layers=[big])
    big_digest = "sha256:" + hashlib.sha256(big).hexdigest()
    with SharedLink(("127.0.0.1", hub.port), rate_bytes=2_000_000) as link:
        m = make_mirror(link.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "cut:1"))
        wanted = image_lists.wanted_images(m.settings)[0]
        cutting = threading.Event()

        def cut_every_half_second():
            while not cutting.wait(0.5):
                link.cut()

        cutter = threading.Thread(target=cut_every_half_second)
        cutter.start()
        lines = []
        try:
            [cut] = warm_engine.Engine(m.settings, log=lines.append, fetch_once=True, stall_timeout=3).run(wanted)
        finally:
            cutting.set()
            cutter.join()
    assert not cut.ok and "transfer broke" in cut.error, cut.error
    assert "does not match" not in cut.error and "not fetched again" in cut.error, cut.error
    assert len([line for line in lines if "trying again" in line]) == warm_engine.BLOB_ATTEMPTS - 1, lines
    assert not storage.blob_data(m.storage(), big_digest).exists()
    for path in m.storage().glob("docker/registry/v2/blobs/sha256/*/*/data"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.parent.name


def test_an_engine_without_the_patch_is_warmed_the_careful_way(tmp_path, hub, make_mirror, docker_client,
                                                               debian_registry_image):
    base = make_layer(1_000_000, "careful-base")
    names = ["library/careful-a", "library/careful-b"]
    for n, name in enumerate(names):
        push_image(hub.url, name, "1", layers=[base, make_layer(400_000, f"careful-{n}")])
    m = make_mirror(hub.url, DOCKER_MIRROR_REGISTRY_BUILT=False,
                    DOCKER_MIRROR_REGISTRY_IMAGE=debian_registry_image.ref,
                    DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, *(f"{n}:1" for n in names)))
    lines = []
    assert warm.warm(m.settings, log=lines.append, client=docker_client, gc=False) == [], lines
    assert any("may fetch twice" in line for line in lines), lines
    for name in names:
        for digest in blobs_of_image(hub.url, name, "1"):
            assert stored_whole(m.storage(), name, digest), (name, digest)


def test_an_engine_without_the_patch_tells_a_refused_digest_from_a_stall(tmp_path, hub, make_mirror,
                                                                       debian_registry_image):
    """Such an engine stops storing without a word for a digest that fails as for an upstream
    gone: the warm asks the upstream which it was."""
    bad_layer = make_layer(1_000_000, "careful-bad")
    push_image(hub.url, "library/careful-bad", "1", layers=[bad_layer])
    bad_digest = "sha256:" + hashlib.sha256(bad_layer).hexdigest()
    corrupt(hub, bad_digest)
    m = make_mirror(hub.url, DOCKER_MIRROR_REGISTRY_BUILT=False,
                    DOCKER_MIRROR_REGISTRY_IMAGE=debian_registry_image.ref,
                    DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "careful-bad:1"))
    wanted = image_lists.wanted_images(m.settings)[0]
    [bad] = warm_engine.Engine(m.settings, log=lambda _: None, hang_up=True, stall_timeout=2).run(wanted)
    assert not bad.ok and "does not match its digest" in bad.error and bad_digest in bad.error, bad.error
    assert "no progress" not in bad.error and "upstream gone" not in bad.error, bad.error
    assert not storage.blob_data(m.storage(), bad_digest).exists()
