"""The cache's lifecycle on object storage, and status seeing the store: three replicas on a
real SeaweedFS behind HAProxy, real pulls, distribution's own garbage-collect on the bucket.

The policy drops an image a client pulled once and nobody since (time moves by a
ShiftedClock); its links go from the bucket, garbage-collect runs in a one-shot
container against the same bucket with every replica stopped, and the bucket's
usage (the test's own S3 listing) falls by the image's own bytes, the shared
base layer kept. With every replica out, HAProxy answers a registry API 503
itself. Then SeaweedFS's volume server is killed (the gateway and the filer
still answer a LIST, which is all distribution's storage health check asks)
and status says the store does not serve a blob read, exit non-zero.

A moving tag pulled ad hoc (no pins): the tag's index keys in the bucket say which digest it
left behind, and that one leaves the bucket at the next collection.
"""

import hashlib
import json
import subprocess
import time

import botocore.session
import requests

from mirror.services import warm
from mirror.engine import containers
from mirror.model.replicas import replica_names
from mirror.model.retention import ShiftedClock
from mirror.net.probes import answers
from mirror.services import lifecycle
from support.configs import image_list
from support.mirrors import Mirror, docker_pull, pulls_offline
from support.replicas import free_port_block, haproxy_servers, pull, wait_for
from support.seaweed import SeaweedS3, weed_binary
from support.upstream import free_ports, make_layer, push_image

BUCKET = "lifecycle-cache"
ACCESS_KEY = "lifecycletest"
SECRET_KEY = "lifecycle-secret-key-never-shown"
ROOT = "objgc"


class SplitSeaweed(SeaweedS3):
    """SeaweedFS with its volume server as a process of its own, so that a test can kill it
    and leave the master, the filer and the S3 gateway answering."""

    def __init__(self, root, access_key, secret_key):
        super().__init__(root, access_key, secret_key, extra_args=("-volume=false",))
        self.volume_http, self.volume_grpc = free_ports(2)
        self.volume: subprocess.Popen | None = None

    def start(self, timeout: float = 60):
        (self.root / "volume").mkdir(parents=True, exist_ok=True)
        self.volume_log = open(self.root / "volume.log", "wb")
        self.volume = subprocess.Popen(
            [weed_binary(), "volume", f"-dir={self.root / 'volume'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-port={self.volume_http}", f"-port.grpc={self.volume_grpc}",
             f"-master=127.0.0.1:{self.master_port}.{self.grpc_ports['master']}", "-max=0"],
            stdout=self.volume_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return super().start(timeout)

    def kill_volume(self):
        self.volume.kill()
        self.volume.wait()

    def stop(self):
        super().stop()
        if self.volume is not None and self.volume.poll() is None:
            self.volume.kill()
            self.volume.wait()
        if getattr(self, "volume_log", None):
            self.volume_log.close()


SEAWEED_STORE = SplitSeaweed  # the `seaweed` fixture (conftest.py) starts this one


def bucket_usage(store, prefix: str) -> dict[str, int]:
    """{key: size} under `prefix`, from the store's own S3 listing (a botocore client of the
    test's, not the product's code)."""
    s3 = botocore.session.get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=store.endpoint,
        aws_access_key_id=store.access_key, aws_secret_access_key=store.secret_key)
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return found


def data_key(digest: str) -> str:
    hex_ = digest.split(":", 1)[1]
    return f"{ROOT}/dockerhub/docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data"


def test_policy_drops_an_image_from_the_bucket_and_status_sees_the_store(
        tmp_path, docker_client, registry_image, seaweed, hub):
    shared, kept_own, dropped_own = (make_layer(1_500_000, "objgc-shared"),
                                     make_layer(1_000_000, "objgc-kept"), make_layer(3_000_000, "objgc-gone"))
    kept = push_image(hub.url, "library/kept", "1", layers=[shared, kept_own])
    dropped = push_image(hub.url, "library/dropped", "1", layers=[shared, dropped_own])
    m = Mirror(tmp_path / "mirror", hub.url, DOCKER_MIRROR_STORAGE_FILESYSTEM=False,
               DOCKER_MIRROR_STORAGE_S3=True, DOCKER_MIRROR_S3_ENDPOINT=seaweed.endpoint,
               DOCKER_MIRROR_S3_BUCKET=BUCKET, DOCKER_MIRROR_S3_ACCESS_KEY_ID=ACCESS_KEY,
               DOCKER_MIRROR_S3_SECRET_KEY=SECRET_KEY, DOCKER_MIRROR_S3_ROOT_DIRECTORY=f"/{ROOT}",
               DOCKER_MIRROR_REPLICAS=3, DOCKER_MIRROR_REPLICA_PORT_BASE=free_port_block(),
               DOCKER_MIRROR_KEEP_UNUSED_DAYS=1,
               DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "library/kept:1"))
    try:
        m.setup()
        names = replica_names(m.prefix, "dockerhub", 3)
        # The image to keep warm is warmed and pinned; the other one a client pulls once.
        assert warm.warm(m.settings, log=lambda _: None, client=docker_client, gc=False) == []
        client_pull = docker_client.images.pull(f"127.0.0.1:{m.port}/library/dropped:1")
        assert client_pull.attrs["RepoDigests"][0].endswith(dropped)
        docker_client.images.remove(client_pull.id, force=True)
        own = "sha256:" + hashlib.sha256(dropped_own).hexdigest()
        base = "sha256:" + hashlib.sha256(shared).hexdigest()
        before = bucket_usage(seaweed, f"{ROOT}/dockerhub/")
        assert data_key(own) in before and data_key(base) in before

        # A day later nothing goes (the pull counts, from whichever replica served it) ...
        clock = ShiftedClock()
        assert not lifecycle.collect(m.settings, docker_client, clock=clock, log=lambda _: None).plan.evictions
        # ... two days after it, the image nobody pulled since goes, with its own bytes only.
        clock.advance(2)
        lines = []
        done = lifecycle.collect(m.settings, docker_client, clock=clock, log=lines.append)
        [gone] = done.plan.evictions
        assert (gone.image.repository, gone.image.digest) == ("library/dropped", dropped), lines
        after = bucket_usage(seaweed, f"{ROOT}/dockerhub/")
        assert data_key(own) not in after and data_key(base) in after
        fell = sum(before.values()) - sum(after.values())
        assert fell >= gone.freed >= len(dropped_own), (fell, gone.freed)
        assert done.disk_before["dockerhub"] - done.disk_after["dockerhub"] == fell
        assert done.disk_after["dockerhub"] == sum(after.values())
        assert not [k for k in after if "/repositories/library/dropped/" in k], after
        # Every replica was stopped for it, and is back; the time it took is said.
        assert 0 < done.unavailable["dockerhub"] < 60
        assert any("collected in" in line for line in lines), lines
        print("\n".join(lines))
        assert {docker_client.containers.get(n).status for n in names} == {"running"}
        assert answers(m.settings.upstreams[0].endpoint)
        hub.stop()   # the kept image still pulls, from the bucket alone
        try:
            assert pull(m.url(), "library/kept", "1")[0] == kept
        finally:
            hub.start()

        # Every replica out (as during a collection, or each answering 503 when its storage health
        # check fails): HAProxy answers a registry API 503 itself, not a closed connection.
        with containers.stopped(docker_client, m.settings, m.settings.upstreams[0]):
            wait_for(lambda: all(s["status"].startswith("DOWN") for name, s in
                                 haproxy_servers(m.settings.replicas.stats_port).items() if name in names),
                     10, "HAProxy to take every replica out")
            answer = requests.get(f"{m.url()}/v2/library/kept/manifests/1", timeout=5)
            assert answer.status_code == 503 and answer.json()["errors"][0]["code"] == "UNAVAILABLE"
        wait_for(lambda: answers(m.settings.upstreams[0].endpoint), 20, "the replicas back")

        # Status reads the store: its usage, and that it serves a blob read.
        out = m.run("status", "--json")
        upstream = json.loads(out.stdout)["upstreams"][0]
        assert upstream["store"]["answering"] is True, upstream["store"]
        assert upstream["disk_bytes"] == sum(bucket_usage(seaweed, f"{ROOT}/dockerhub/").values())
        assert [i["repository"] for i in upstream["images"]] == ["library/kept"]
        assert SECRET_KEY not in out.stdout

        # The volume server goes: a LIST still answers, a blob read does not.
        seaweed.kill_volume()
        started = time.monotonic()
        failed = m.run("status", check=False)
        took = time.monotonic() - started
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "store:      NOT ANSWERING" in failed.stdout, failed.stdout
        assert f"s3 bucket {BUCKET} at {seaweed.endpoint}" in failed.stdout
        assert SECRET_KEY not in failed.stdout + failed.stderr
        assert took < 30, took
        print(failed.stdout, f"(status took {took:.1f} s)")
    finally:
        m.remove(docker_client)
    assert not [c.name for c in docker_client.containers.list(all=True, filters={"name": m.prefix})]


def test_a_moving_tag_pulled_ad_hoc_leaves_the_bucket_by_its_tag_history(
        tmp_path, docker_client, make_mirror, seaweed, hub):
    """Not an image to keep warm (no pins), on s3: the tag's index keys in the bucket say which
    digest it left behind beyond K, as the filesystem's tag history does; it goes at the next
    collection, with its own layer, and the newest and the previous one stay."""
    m = make_mirror(hub.url, DOCKER_MIRROR_STORAGE_FILESYSTEM=False, DOCKER_MIRROR_STORAGE_S3=True,
                    DOCKER_MIRROR_S3_ENDPOINT=seaweed.endpoint, DOCKER_MIRROR_S3_BUCKET=BUCKET,
                    DOCKER_MIRROR_S3_ACCESS_KEY_ID=ACCESS_KEY, DOCKER_MIRROR_S3_SECRET_KEY=SECRET_KEY,
                    DOCKER_MIRROR_S3_ROOT_DIRECTORY=f"/{ROOT}")
    assert m.settings.lifecycle.keep_previous == 1
    pushed, own = [], []
    for n in range(3):   # retagged upstream, a client pulls the tag after each
        layer = make_layer(400_000, f"objgc-adhoc-{n}")
        own.append("sha256:" + hashlib.sha256(layer).hexdigest())
        pushed.append(push_image(hub.url, "team/tool", "latest", layers=[layer]))
        assert docker_pull(docker_client, m, "team/tool:latest") == pushed[-1]
        time.sleep(1.1)   # the store's modification times are in whole seconds: an order to go by
    lines = []
    done = lifecycle.collect(m.settings, docker_client, log=lines.append)
    assert [e.image.digest for e in done.plan.evictions] == [pushed[0]], lines
    assert "left behind" in done.plan.evictions[0].reason
    after = bucket_usage(seaweed, f"{ROOT}/dockerhub/")
    assert data_key(own[0]) not in after, lines
    assert data_key(own[1]) in after and data_key(own[2]) in after
    hub.stop()
    try:   # offline: the newest under its tag, the previous one by digest
        assert pulls_offline(m, "team/tool", "latest") == pushed[2]
        assert pulls_offline(m, "team/tool", pushed[1]) == pushed[1]
    finally:
        hub.start()
