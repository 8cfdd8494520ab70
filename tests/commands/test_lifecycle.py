"""The cache's lifecycle on real mirrors and real pulls: pins with previous digests,
last use from the request log, the policy, distribution's garbage-collect.

Time moves by an injectable clock (ShiftedClock) and by aged registry state,
never by sleeping."""

import dataclasses
import json
import threading
import time

import docker.errors
import pytest

from mirror.services import install, lifecycle, status

from mirror.services import warm

from mirror.host import storage, usage
from mirror.model.retention import ShiftedClock
from mirror.net import registry_api as regapi
from mirror.net.probes import wait_until_answering
from support.configs import image_list
from support.mirrors import docker_pull, pulls_offline
from support.upstream import make_layer, push_image


def with_policy(m, **fields):
    return dataclasses.replace(m.settings, lifecycle=dataclasses.replace(m.settings.lifecycle, **fields))


def revisions(m, repository):
    return set(storage.revisions(m.storage(), repository))


def age_registry_expiry(m, docker_client):
    """distribution 2.8's own expiry comes due: every entry aged into the past, registry restarted."""
    container = m.container(docker_client)
    container.stop(timeout=10)
    path = storage.StorageTree(m.storage()).scheduler_state
    state = json.loads(path.read_text() or "{}") if path.exists() else {}
    for entry in state.values():
        entry["ExpiryData"] = "2000-01-01T00:00:00Z"
    path.write_text(json.dumps(state))
    container.start()
    assert wait_until_answering(m.settings.upstream("dockerhub").endpoint, 20.0)
    time.sleep(2)  # the aged entries' expiry runs right after start
    return len(state)


def test_parse_pull_reads_manifest_pulls_only():
    line = ('2026-11-24T03:28:39.928615767Z 127.0.0.1 - - [24/Nov/2026:03:28:39 +0000] '
            '"GET /v2/library/nginx/manifests/1.27 HTTP/1.1" 200 527 "" "docker/24"')
    assert lifecycle.parse_pull(line) == (1795490919928615767, "library/nginx", "1.27")
    assert lifecycle.parse_pull(line.replace("GET", "HEAD").replace("1.27", "sha256:" + "a" * 64))[2] \
        == "sha256:" + "a" * 64
    assert lifecycle.parse_pull(line.replace('" 200', '" 404')) is None
    assert lifecycle.parse_pull(line.replace("manifests/1.27", "blobs/sha256:" + "a" * 64)) is None
    assert lifecycle.parse_pull(line.replace('"GET /v2/library/nginx/manifests/1.27', '"GET /v2/')) is None


def test_a_moving_tag_keeps_current_and_k_previous_and_frees_the_rest(tmp_path, hub, make_mirror,
                                                                      docker_client):
    base = make_layer(500_000, "moving-base")
    m = make_mirror(hub.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "vllm/vllm-openai:latest"),
                    DOCKER_MIRROR_KEEP_UNUSED_DAYS=1, DOCKER_MIRROR_KEEP_PREVIOUS_DIGESTS=1)
    clock = ShiftedClock()
    pushed = []
    for n in range(5):
        pushed.append(push_image(hub.url, "vllm/vllm-openai", "latest",
                                 layers=[base, make_layer(400_000, f"moving-{n}")]))
        assert warm.warm(m.settings, log=lambda _: None, client=docker_client, gc=False) == []
        done = lifecycle.collect(m.settings, docker_client, clock=clock, log=lambda _: None)
        held = revisions(m, "vllm/vllm-openai")
        assert held == set(pushed[-2:]), n  # current + K=1 previous, nothing older
        assert usage.read_pins(m.root)["docker.io/vllm/vllm-openai:latest"]["digests"] == pushed[::-1][:2]
        if n >= 2:  # the digest left behind beyond K went, and the disk fell by what it held
            [gone] = done.plan.evictions
            assert gone.image.digest == pushed[n - 2]
            assert gone.freed >= 400_000
            fell = done.disk_before["dockerhub"] - done.disk_after["dockerhub"]
            assert fell >= gone.freed * 0.95, (fell, gone.freed)
        clock.advance(2)  # a refresh every other day; unpinned content keeps 1 day
    assert pulls_offline(m, "vllm/vllm-openai", "latest") == pushed[-1]
    hub.stop()
    try:
        for digest in pushed[-2:]:  # the rollback works offline
            assert pulls_offline(m, "vllm/vllm-openai", digest) == digest
    finally:
        hub.start()


def test_used_images_outlive_the_registry_expiry_and_unused_ones_go(tmp_path, hub, make_mirror,
                                                                     docker_client):
    shared = make_layer(600_000, "base")
    push_image(hub.url, "minio/minio", "RELEASE.x", layers=[shared, make_layer(100_000, "minio")])
    push_image(hub.url, "library/daily", "1", layers=[shared, make_layer(100_000, "daily")])
    cold = push_image(hub.url, "library/cold", "1", layers=[shared, make_layer(300_000, "cold")])
    m = make_mirror(hub.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "minio/minio:RELEASE.x"),
                    DOCKER_MIRROR_KEEP_UNUSED_DAYS=5)
    clock = ShiftedClock()
    assert warm.warm(m.settings, log=lambda _: None, client=docker_client, gc=False) == []
    docker_pull(docker_client, m, "library/cold:1")  # pulled once, ad hoc, sharing the base layer
    docker_pull(docker_client, m, "library/daily:1")
    state = storage.StorageTree(m.storage()).scheduler_state
    deadline = time.monotonic() + 15  # the registry saves its expiry state every few seconds
    while "library/daily@" not in (state.read_text() if state.exists() else "") \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    for day in range(12):
        docker_pull(docker_client, m, "library/daily:1")  # pulled every day
        if day == 8:  # the registry's own 7-day expiry comes due: it must delete nothing
            assert age_registry_expiry(m, docker_client) > 0
        done = lifecycle.collect(m.settings, docker_client, clock=clock, log=lambda _: None)
        dropped = {e.image.repository for e in done.plan.evictions}
        assert "library/daily" not in dropped and "minio/minio" not in dropped
        if day == 5:
            assert dropped == {"library/cold"}  # 5 days unused
        assert bool(revisions(m, "library/cold")) == (day < 5), day
        clock.advance(1)
    hub.stop()
    try:  # offline: the pinned image and the daily one pull whole; the shared base is still there
        pulls_offline(m, "minio/minio", "RELEASE.x")
        pulls_offline(m, "library/daily", "1")
        with pytest.raises(regapi.RegistryAPIError):
            pulls_offline(m, "library/cold", "1")
    finally:
        hub.start()
    assert cold not in revisions(m, "library/cold")


def test_over_the_size_limit_least_recently_pulled_unpinned_go_first(tmp_path, hub, make_mirror,
                                                                      docker_client):
    for name in ("pinned", "old", "middle", "new"):
        push_image(hub.url, f"library/{name}", "1", layers=[make_layer(1_000_000, name)])
    m = make_mirror(hub.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "pinned:1"))
    clock = ShiftedClock()
    assert warm.warm(m.settings, log=lambda _: None, client=docker_client, gc=False) == []
    for name in ("old", "middle", "new"):
        docker_pull(docker_client, m, f"library/{name}:1")
        lifecycle.ingest(m.settings, docker_client, clock)
        clock.advance(1)
    limited = with_policy(m, max_bytes=2_500_000)  # room for two of the four images
    dry = lifecycle.collect(limited, docker_client, dry_run=True, clock=clock, log=lambda _: None)
    assert [e.image.repository for e in dry.plan.evictions] == ["library/old", "library/middle"]
    assert revisions(m, "library/old")  # a dry run changes nothing
    done = lifecycle.collect(limited, docker_client, clock=clock, log=lambda _: None)
    assert [e.image.repository for e in done.plan.evictions] == ["library/old", "library/middle"]
    assert done.plan.bytes_after <= 2_500_000
    assert not revisions(m, "library/old") and not revisions(m, "library/middle")
    assert revisions(m, "library/pinned") and revisions(m, "library/new")
    # Pinned images never go, even alone over the limit.
    tiny = lifecycle.collect(with_policy(m, max_bytes=1), docker_client, clock=clock, log=lambda _: None)
    assert [e.image.repository for e in tiny.plan.evictions] == ["library/new"]
    assert tiny.plan.over_limit and revisions(m, "library/pinned")
    # Status shows it per image.
    doc = status.gather(m.settings, docker_client, clock=clock)
    [row] = doc["upstreams"][0]["images"]
    assert row["repository"] == "library/pinned" and row["pinned"] and row["drops"] is None
    assert row["bytes"] > 1_000_000 and row["last_pulled"]


def test_docker_pull_loop_during_a_collection_gets_right_digests_or_fails_cleanly(tmp_path, hub, make_mirror,
                                                                                   docker_client):
    names = [f"library/app{n}" for n in range(4)]
    expected = {name: push_image(hub.url, name, "1", layers=[make_layer(800_000, "gc-base"),
                                                             make_layer(300_000, name)])
                for name in names}
    m = make_mirror(hub.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, *(f"{n}:1" for n in names[:2])),
                    DOCKER_MIRROR_KEEP_UNUSED_DAYS=1)
    clock = ShiftedClock()
    assert warm.warm(m.settings, log=lambda _: None, client=docker_client, gc=False) == []
    for name in names[2:]:
        docker_pull(docker_client, m, f"{name}:1")
    lifecycle.ingest(m.settings, docker_client, clock)
    clock.advance(3)  # the two ad hoc images are now unused for 3 days
    outcomes, stop = [], threading.Event()

    def loop():
        while not stop.is_set():
            for name in names[:2]:
                try:
                    outcomes.append(("ok", name, docker_pull(docker_client, m, f"{name}:1")))
                except docker.errors.DockerException as err:
                    outcomes.append(("failed", name, str(err)[:200]))
    puller = threading.Thread(target=loop)
    puller.start()
    time.sleep(1.0)
    try:
        done = lifecycle.collect(m.settings, docker_client, clock=clock, log=lambda _: None)
    finally:
        time.sleep(1.0)
        stop.set()
        puller.join(timeout=120)
    assert {e.image.repository for e in done.plan.evictions} == set(names[2:])
    good = [o for o in outcomes if o[0] == "ok"]
    failed = [o for o in outcomes if o[0] == "failed"]
    print(f"pulls during the collection: {len(good)} ok, {len(failed)} failed; "
          f"mirror unavailable {done.unavailable['dockerhub']:.2f} s")
    assert good and all(digest == expected[name] for _, name, digest in good)
    assert done.unavailable["dockerhub"] < 20
    hub.stop()
    try:  # offline after collection: every kept image still pulls, with docker
        for name in names[:2]:
            assert docker_pull(docker_client, m, f"{name}:1") == expected[name]
    finally:
        hub.start()


def test_pulls_survive_the_mirror_container_being_re_created(tmp_path, hub, make_mirror, docker_client):
    """The request log goes with its container: setup reads it before it re-creates one."""
    digest = push_image(hub.url, "library/daily", "1", layers=[make_layer(200_000, "recreated")])
    m = make_mirror(hub.url)
    docker_pull(docker_client, m, "library/daily:1")
    before = m.container(docker_client).id
    m.configure(DOCKER_MIRROR_PULL_THROUGH_CACHE=False)  # another registry config: a new container
    install.start_mirrors(m.settings, docker_client, log=lambda _: None)
    assert m.container(docker_client).id != before
    used = usage.read_usage(m.root, "dockerhub").used
    assert f"library/daily@{digest}" in used and "library/daily:1" in used
