"""The s3 storage backend end to end: `make docker-mirror` against a real SeaweedFS.

A pull-through mirror on the bucket serves the upstream's image, the blobs
land in the bucket under the upstream's prefix, another bucket and root
directory set on the running mirror take what it stores from then on, and
with the upstream gone the offline mirror on the same bucket still serves them.
"""

import hashlib
import shutil
import json
import subprocess
import time
import uuid

import pytest
import requests

from mirror.services import archive, restore

from mirror.services import warm
from mirror.model.manifests import blobs_of
from mirror.model.modes import OFFLINE, PULL_THROUGH
from mirror.net.registry_api import RegistryAPI
from support.configs import QUIET_PROBES, image_list, run_mirror
from support.mirrors import Mirror
from support.seaweed import SeaweedS3
from support.upstream import free_port, make_layer, push_image

BUCKET = "mirror-cache"
OTHER_BUCKET = "mirror-cache-moved"
ROOT = "/dm-test"
ACCESS_KEY = "mirrortest"
SECRET_KEY = "s3-secret-key-never-shown"


class TwoBucketStore(SeaweedS3):
    """SeaweedFS with room for a second bucket: each bucket is a collection with volumes of its
    own, and at the default volume size this one volume server has no slot left for another."""

    def __init__(self, root, access_key, secret_key, extra_args=()):
        super().__init__(root, access_key, secret_key,
                         extra_args=("-volume.max=20", "-master.volumeSizeLimitMB=64", *extra_args))


SEAWEED_STORE = TwoBucketStore   # (the seaweed fixture of conftest.py)


@pytest.fixture
def seaweed(seaweed):
    """The shared store (conftest.py), checked first: its gateway checks signatures, so
    unsigned or wrongly signed requests are refused."""
    assert requests.put(f"{seaweed.endpoint}/{BUCKET}/probe", data=b"x", timeout=10).status_code == 403
    wrong = SeaweedS3(seaweed.root, ACCESS_KEY, "not-the-secret")
    wrong.s3_port = seaweed.s3_port
    assert wrong.s3("HEAD", f"/{BUCKET}").status_code == 403
    assert seaweed.s3("HEAD", f"/{BUCKET}").status_code == 200
    return seaweed


@pytest.fixture
def s3_mirror(tmp_path, docker_client, registry_image, seaweed, hub):
    m = Mirror(tmp_path / "mirror", hub.url, DOCKER_MIRROR_STORAGE_FILESYSTEM=False,
               DOCKER_MIRROR_STORAGE_S3=True, DOCKER_MIRROR_S3_ENDPOINT=seaweed.endpoint,
               DOCKER_MIRROR_S3_BUCKET=BUCKET, DOCKER_MIRROR_S3_ACCESS_KEY_ID=ACCESS_KEY,
               DOCKER_MIRROR_S3_SECRET_KEY=SECRET_KEY, DOCKER_MIRROR_S3_ROOT_DIRECTORY=ROOT)
    yield m
    m.remove(docker_client)


def pull(url: str, repository: str, tag: str) -> tuple[str, dict[str, bytes]]:
    """What `docker pull` asks a registry: the manifest, then every blob; their bytes."""
    api = RegistryAPI(url)
    manifest = api.get_manifest(repository, tag)
    blobs = {}
    for descriptor in blobs_of(json.loads(manifest.body)):
        chunks = []
        api.fetch_blob(repository, descriptor["digest"], sink=chunks.append)  # checks the sha256
        blobs[descriptor["digest"]] = b"".join(chunks)
    return manifest.digest, blobs


def stored_in_bucket(store: SeaweedS3, digest: str, timeout: float = 30, bucket: str = BUCKET,
                     root: str = ROOT) -> bytes:
    """The blob's data object in the bucket; distribution stores a proxied blob in the background."""
    hex_ = digest.split(":", 1)[1]
    key = f"{root}/dockerhub/docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data"
    deadline = time.monotonic() + timeout
    while (data := store.read(bucket, key)) is None:
        assert time.monotonic() < deadline, f"{key} never reached the bucket: {store.list(bucket)}"
        time.sleep(0.2)
    return data


def image_exists(config, ref: str, expect: int, timeout: float = 30) -> subprocess.CompletedProcess:
    """check-mirror IMAGE_EXISTS, asked until it exits `expect` (distribution links a proxied
    layer in the store after its data, in the background)."""
    deadline = time.monotonic() + timeout
    while (found := run_mirror("check-mirror", "IMAGE_EXISTS", ref, config=config, check=False)).returncode \
            != expect and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def assert_image_exists_reads_the_bucket(m: Mirror, seaweed: SeaweedS3) -> None:
    """IMAGE_EXISTS answers from the bucket, under the upstream's prefix of the root directory:
    0 for the pulled image, 1 for one never pulled; 3 (cannot tell), naming the store, with
    keys it refuses, with no store there or with no such bucket in it."""
    found = image_exists(m.config, "alpine:3.20", 0)
    assert (found.returncode, found.stdout, found.stderr) == (0, "", "")
    assert image_exists(m.config, f"alpine:never-pulled-{uuid.uuid4().hex[:8]}", 1, 0).returncode == 1
    assert image_exists(m.config, "quay.io/library/alpine:3.20", 1, 0).returncode == 1  # not mirrored
    text = m.config.read_text()
    wrong_key, closed = m.tmp / "wrong-key.config", m.tmp / "no-store.config"
    wrong_key.write_text(text.replace(SECRET_KEY, "not-the-secret"))
    closed.write_text(text.replace(seaweed.endpoint, f"http://127.0.0.1:{free_port()}"))
    refused = image_exists(wrong_key, "alpine:3.20", 3, 0)
    assert refused.returncode == 3 and "Traceback" not in refused.stderr, refused.stderr
    assert f"cannot tell whether alpine:3.20 is cached: s3 bucket {BUCKET} at {seaweed.endpoint}" \
        in refused.stderr, refused.stderr
    assert "refuses DOCKER_MIRROR_S3_ACCESS_KEY_ID and DOCKER_MIRROR_S3_SECRET_KEY" in refused.stderr
    assert "not-the-secret" not in refused.stderr
    gone = image_exists(closed, "alpine:3.20", 3, 0)
    assert gone.returncode == 3 and "Traceback" not in gone.stderr, gone.stderr
    assert f"s3 bucket {BUCKET} at http://127.0.0.1:" in gone.stderr and SECRET_KEY not in gone.stderr
    # A misspelt bucket is no empty cache: "not cached" forever would hide it.
    misspelt = m.tmp / "misspelt-bucket.config"
    misspelt.write_text(text.replace(f'_S3_BUCKET="{BUCKET}"', '_S3_BUCKET="mirror-cahce"'))
    missing = image_exists(misspelt, "alpine:3.20", 3, 0)
    assert missing.returncode == 3 and "Traceback" not in missing.stderr, missing.stderr
    assert f"cannot tell whether alpine:3.20 is cached: s3 bucket mirror-cahce at {seaweed.endpoint}: " \
        in missing.stderr, missing.stderr
    assert "the bucket does not exist (NoSuchBucket): check DOCKER_MIRROR_S3_BUCKET" in missing.stderr
    assert SECRET_KEY not in missing.stderr


def test_pull_through_stores_in_the_bucket_and_serves_offline(s3_mirror, docker_client, seaweed, hub):
    digest = push_image(hub.url, "library/alpine", "3.20")
    # A shell may carry an AWS_CA_BUNDLE distribution cannot load (it panics at start):
    # the product must not hand this process's environment to the registry container.
    result = run_mirror("docker-mirror", config=s3_mirror.config,
                        env={**QUIET_PROBES, "AWS_CA_BUNDLE": "/nonexistent/ca.pem"})
    assert "docker.io: pull-through mirror" in result.stdout
    container = s3_mirror.container(docker_client)
    assert container.labels["docker-mirror.mode"] == PULL_THROUGH
    assert not [e for e in container.attrs["Config"]["Env"] or [] if e.startswith("AWS_")]
    assert container.attrs["HostConfig"]["Binds"] in (None, []) or \
        not any("/registry/" in b for b in container.attrs["HostConfig"]["Binds"])

    served, blobs = pull(s3_mirror.url(), "library/alpine", "3.20")
    assert served == digest and blobs
    for blob_digest, data in blobs.items():
        stored = stored_in_bucket(seaweed, blob_digest)
        assert "sha256:" + hashlib.sha256(stored).hexdigest() == blob_digest
    keys = seaweed.list(BUCKET, ROOT)
    assert any(k.endswith("/_manifests/tags/3.20/current/link") for k in keys), keys
    assert_image_exists_reads_the_bucket(s3_mirror, seaweed)
    assert not (s3_mirror.root / "registry" / "dockerhub").exists()  # nothing on this host's disk
    # Cached layers come from the mirror itself, not by a redirect to the bucket,
    # which clients on other hosts may not reach (DOCKER_MIRROR_STORAGE_REDIRECT off).
    cached = requests.get(f"{s3_mirror.url()}/v2/library/alpine/blobs/{next(iter(blobs))}",
                          allow_redirects=False, timeout=30)
    assert cached.status_code == 200 and cached.content == blobs[next(iter(blobs))]

    status = s3_mirror.run("status", "--json").stdout
    assert SECRET_KEY not in status
    upstream = json.loads(status)["upstreams"][0]
    assert upstream["storage_dir"] is None and upstream["store"]["answering"] is True
    assert ("library/alpine", "3.20", digest) in [(c["repository"], c["tag"], c["digest"])
                                                  for c in upstream["cached"]]
    text = s3_mirror.run("status").stdout
    assert "store:      answering (s3" in text and SECRET_KEY not in text
    # The lifecycle reads the bucket: an image pulled now is kept (tests/commands/test_s3_lifecycle.py
    # drops one).
    collected = s3_mirror.run("gc")
    assert "0 of 1 image(s) to drop" in collected.stdout, collected.stdout
    first = next(iter(blobs))
    assert stored_in_bucket(seaweed, first) == blobs[first]  # still there
    assert SECRET_KEY not in container.logs().decode(errors="replace")

    # Another bucket and root directory on the running mirror: `make docker-mirror` re-creates
    # it on them, and what it stores from then on goes there, not into the old place.
    seaweed.make_bucket(OTHER_BUCKET)
    s3_mirror.configure(DOCKER_MIRROR_S3_BUCKET=OTHER_BUCKET, DOCKER_MIRROR_S3_ROOT_DIRECTORY="/moved")
    assert "recreated" in s3_mirror.setup().stdout
    moved_digest = push_image(hub.url, "library/moved", "1")
    moved_served, moved_blobs = pull(s3_mirror.url(), "library/moved", "1")
    assert moved_served == moved_digest
    for blob_digest in moved_blobs:
        stored = stored_in_bucket(seaweed, blob_digest, bucket=OTHER_BUCKET, root="/moved")
        assert "sha256:" + hashlib.sha256(stored).hexdigest() == blob_digest
    assert not [k for k in seaweed.list(BUCKET) if "/moved/" in k or k.startswith("moved")]
    assert not [k for k in seaweed.list(BUCKET, ROOT) if any(d[7:] in k for d in moved_blobs)]
    s3_mirror.configure(DOCKER_MIRROR_S3_BUCKET=BUCKET, DOCKER_MIRROR_S3_ROOT_DIRECTORY=ROOT)
    assert "recreated" in s3_mirror.setup().stdout

    hub.stop()
    result = s3_mirror.run("docker-mirror")
    assert "docker.io: offline mirror" in result.stdout
    assert s3_mirror.container(docker_client).labels["docker-mirror.mode"] == OFFLINE
    assert pull(s3_mirror.url(), "library/alpine", "3.20") == (digest, blobs)


def test_with_redirects_on_cached_layers_are_fetched_from_the_store(tmp_path, docker_client, registry_image,
                                                                     seaweed, hub):
    m = Mirror(tmp_path / "redirecting", hub.url, DOCKER_MIRROR_STORAGE_FILESYSTEM=False,
               DOCKER_MIRROR_STORAGE_S3=True, DOCKER_MIRROR_S3_ENDPOINT=seaweed.endpoint,
               DOCKER_MIRROR_S3_BUCKET=BUCKET, DOCKER_MIRROR_S3_ACCESS_KEY_ID=ACCESS_KEY,
               DOCKER_MIRROR_S3_SECRET_KEY=SECRET_KEY, DOCKER_MIRROR_S3_ROOT_DIRECTORY=ROOT,
               DOCKER_MIRROR_STORAGE_REDIRECT=True)
    try:
        push_image(hub.url, "library/alpine", "3.20")
        m.run("docker-mirror")
        _, blobs = pull(m.url(), "library/alpine", "3.20")
        layer, data = next(iter(blobs.items()))
        stored_in_bucket(seaweed, layer)
        answer = requests.get(f"{m.url()}/v2/library/alpine/blobs/{layer}", allow_redirects=False, timeout=30)
        assert answer.status_code == 307, answer.status_code
        location = answer.headers["Location"]
        assert location.startswith(f"{seaweed.endpoint}/{BUCKET}/"), location
        assert requests.get(location, timeout=30).content == data   # a signed URL the store honours
    finally:
        m.remove(docker_client)


def test_warm_streams_every_blob_into_the_bucket_for_each_repository(tmp_path, s3_mirror, docker_client,
                                                                      seaweed, hub):
    """No file to wait for on s3: warming waits for each blob's object and its
    repository's link in the bucket, so a layer shared by several repositories
    is linked for each and every image is served with the upstream gone."""
    base = make_layer(2_000_000, "s3-shared-base")
    names = [f"library/s3app{n}" for n in range(3)]
    digests = {name: push_image(hub.url, name, "1", layers=[base, make_layer(100_000, f"s3-{n}")])
               for n, name in enumerate(names)}
    s3_mirror.configure(DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, *(f"{n}:1" for n in names)))
    s3_mirror.setup()
    assert warm.warm(s3_mirror.settings, log=lambda _: None, client=docker_client) == []
    keys = set(seaweed.list(BUCKET, ROOT))
    for name in names:
        manifest = RegistryAPI(s3_mirror.url()).get_manifest(name, "1")
        for blob in blobs_of(json.loads(manifest.body)):
            hex_ = blob["digest"].split(":", 1)[1]
            assert f"{ROOT.strip('/')}/dockerhub/docker/registry/v2/repositories/{name}/_layers/sha256/" \
                   f"{hex_}/link" in keys, (name, blob["digest"])
    hub.stop()
    assert "docker.io: offline mirror" in s3_mirror.setup().stdout
    for name in names:
        served, blobs = pull(s3_mirror.url(), name, "1")
        assert served == digests[name] and len(blobs) == 3


def test_archive_from_one_bucket_prefix_restores_into_another(tmp_path, s3_mirror, docker_client,
                                                               registry_image, seaweed, hub):
    """Archive and restore go through registries on the bucket, not through files on disk."""
    digest = push_image(hub.url, "library/s3arch", "1", layers=[make_layer(300_000, "s3-arch")])
    s3_mirror.configure(DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "s3arch:1"))
    s3_mirror.setup()
    assert warm.warm(s3_mirror.settings, log=lambda _: None, client=docker_client) == []
    assert archive.archive_images(s3_mirror.settings, log=lambda _: None) == []
    fresh = Mirror(tmp_path / "fresh", hub.url, **{**s3_mirror.overrides,
                                                   "DOCKER_MIRROR_S3_ROOT_DIRECTORY": "/dm-fresh"})
    try:
        shutil.copytree(s3_mirror.root / "images/archives", fresh.root / "images/archives")
        lines = []
        assert restore.restore(fresh.settings, docker_client, log=lines.append) == [], lines
        assert any(k.startswith("dm-fresh/dockerhub/docker/registry/v2/repositories/library/s3arch/")
                   for k in seaweed.list(BUCKET, "/dm-fresh"))
        hub.stop()
        fresh.setup()
        served, blobs = pull(fresh.url(), "library/s3arch", "1")
        assert served == digest and len(blobs) == 2
    finally:
        fresh.remove(docker_client)
