"""What the cache's lifecycle reads and removes in an object store (mirror.net.object_store),
against a real SeaweedFS bucket holding distribution's key layout (no engine: the objects are
the ones a registry writes, put by the test).

Nested repository names, tags, an index's tag entry, layer links, an
unfinished upload, a key whose digest is not one; then a manifest's removal
(its revision link and its tags only), the purge of old uploads, the tidy
after a sweep, the store's usage, and the status probe of a store that
answers and of one that does not.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace

import pytest
import yaml

from mirror import render
from mirror.config import settings
from mirror.model.modes import PULL_THROUGH
from mirror.model.settings import Storage
from mirror.net import s3
from mirror.services import cache_store, status
from support.configs import write_config
from support.seaweed import SeaweedS3
from support.upstream import free_port

BUCKET = "lifecycle-bucket"
ACCESS_KEY, SECRET_KEY = "lifecyclereader", "lifecycle-secret-never-shown"
A, B, C, CONFIG, LAYER = ("sha256:" + c * 64 for c in "abcde")


def storage_for(endpoint: str, root: str = "/lc") -> Storage:
    return Storage("s3", "", s3_endpoint=endpoint, s3_region="us-east-1", s3_bucket=BUCKET,
                   s3_access_key=ACCESS_KEY, s3_secret_key=SECRET_KEY, s3_path_style=True,
                   s3_secure=False, s3_root=root)


def put_layout(writer, bucket: s3.Bucket) -> None:
    """What a registry leaves for: library/app (manifests A and B, tag 1 -> A, tag 2 -> B with an
    index entry for A too), team/app/sub (manifest C, tag x), an upload, and a bad key."""
    repo = f"{bucket.prefix}/repositories"

    def put(key: str, body: bytes) -> None:
        writer.put_object(Bucket=BUCKET, Key=key, Body=body)

    for digest, size in ((A, 10), (B, 20), (C, 30), (CONFIG, 40), (LAYER, 5000)):
        put(bucket.data_key(digest), b"x" * size)
    for name, digest in (("library/app", A), ("library/app", B), ("team/app/sub", C)):
        put(f"{repo}/{name}/_manifests/revisions/sha256/{digest[7:]}/link", digest.encode())
        for blob in (CONFIG, LAYER):
            put(bucket.link_key(name, blob), blob.encode())
    put(f"{repo}/library/app/_manifests/tags/1/current/link", A.encode())
    put(f"{repo}/library/app/_manifests/tags/1/index/sha256/{A[7:]}/link", A.encode())
    put(f"{repo}/library/app/_manifests/tags/2/current/link", B.encode())
    put(f"{repo}/library/app/_manifests/tags/2/index/sha256/{A[7:]}/link", A.encode())
    put(f"{repo}/team/app/sub/_manifests/tags/x/current/link", C.encode())
    put(f"{repo}/team/app/sub/_uploads/0d5e/data", b"u" * 700)
    put(f"{repo}/team/app/sub/_uploads/0d5e/startedat", b"2026-01-01T00:00:00Z")
    put(f"{repo}/library/app/_manifests/revisions/sha256/not-hex/link", A.encode())   # no digest


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with SeaweedS3(tmp_path_factory.mktemp("weed"), ACCESS_KEY, SECRET_KEY) as weed:
        weed.make_bucket(BUCKET)
        yield weed


def test_the_lifecycle_reads_and_prunes_distributions_layout(store):
    bucket = s3.Bucket(storage_for(store.endpoint), "dockerhub")
    put_layout(s3.client(storage_for(store.endpoint)), bucket)
    assert bucket.repositories() == ["library/app", "team/app/sub"]
    assert bucket.revisions("library/app") == [A, B]
    assert bucket.tags("library/app") == {"1": A, "2": B}
    assert bucket.tag_history("library/app", "2") == [A] and bucket.tag_history("team/app/sub", "x") == []
    assert bucket.read_manifest(A) == b"x" * 10 and bucket.blob_size(LAYER) == 5000
    assert abs(bucket.cached_since("library/app", A) - time.time()) < 120
    held = bucket.usage()
    assert held >= 10 + 20 + 30 + 40 + 5000 + 700

    # A manifest goes: its revision link and the tag on it, and its entry under the other tag.
    assert bucket.remove_manifest("library/app", A) == ["1"]
    bucket.forget()
    assert bucket.revisions("library/app") == [B] and bucket.tags("library/app") == {"2": B}
    assert bucket.tag_history("library/app", "2") == []
    keys = [o.key for o in bucket.list(f"{bucket.prefix}/repositories/library/app/_manifests/")]
    assert not [k for k in keys if A[7:] in k], keys
    assert bucket.read_manifest(A) == b"x" * 10   # its blob stays: garbage-collect's to delete

    # Uploads: none is a week old, then all go (the registries stopped).
    assert bucket.purge_uploads(older_than=time.time() - cache_store.UPLOAD_AGE) == 0
    assert bucket.purge_uploads() == 700 + len(b"2026-01-01T00:00:00Z")
    assert not bucket.list(f"{bucket.prefix}/repositories/team/app/sub/_uploads/")

    # After a sweep that deleted the layer: its links go; a repository left without a
    # manifest loses its links.
    bucket.delete([bucket.data_key(LAYER), bucket.data_key(C)])
    assert bucket.tidy() == 1   # library/app's link to the layer
    bucket.forget()
    assert bucket.repositories() == ["library/app"]
    assert bucket.usage() < held - 5000


def s3_settings(tmp_path, endpoint: str):
    return settings.load(write_config(
        tmp_path / ".config", DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
        DOCKER_MIRROR_STORAGE_FILESYSTEM=False, DOCKER_MIRROR_STORAGE_S3=True,
        DOCKER_MIRROR_S3_ENDPOINT=endpoint, DOCKER_MIRROR_S3_BUCKET=BUCKET,
        DOCKER_MIRROR_S3_ACCESS_KEY_ID=ACCESS_KEY, DOCKER_MIRROR_S3_SECRET_KEY=SECRET_KEY,
        DOCKER_MIRROR_S3_ROOT_DIRECTORY="/probe"))


def test_the_status_probe_reads_a_blob_and_names_a_store_that_does_not_answer(store, tmp_path):
    answering = s3_settings(tmp_path, store.endpoint)
    bucket = s3.Bucket(answering.storage, "dockerhub")
    s3.client(answering.storage).put_object(Bucket=BUCKET, Key=bucket.data_key(LAYER), Body=b"y" * 3000)
    found = cache_store.probe(answering, answering.upstream("dockerhub"))
    assert found.answering and found.error is None and found.seconds < 5
    dead = f"http://127.0.0.1:{free_port()}"
    silent = s3_settings(tmp_path, dead)
    started = time.monotonic()
    found = cache_store.probe(silent, silent.upstream("dockerhub"))
    assert not found.answering and time.monotonic() - started < 10
    assert f"s3 bucket {BUCKET} at {dead}" in found.error and SECRET_KEY not in found.error


# ---------------------------------------------------------------- status reads each store once

def put_image(writer, bucket: s3.Bucket, repository: str, tag: str, seed: str) -> str:
    """A one-layer image as a registry caches it: manifest, config and layer blobs, links, a tag."""
    config, layer = (b'{"seed": "%s"}' % seed.encode(), seed.encode() * 500)
    cfg_digest, layer_digest = (f"sha256:{hashlib.sha256(b).hexdigest()}" for b in (config, layer))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": cfg_digest, "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                       "digest": layer_digest, "size": len(layer)}]}).encode()
    digest = f"sha256:{hashlib.sha256(manifest).hexdigest()}"
    repo = f"{bucket.prefix}/repositories/{repository}"
    objects = {bucket.data_key(d): body for d, body in ((digest, manifest), (cfg_digest, config),
                                                        (layer_digest, layer))}
    objects[f"{repo}/_manifests/revisions/sha256/{digest[7:]}/link"] = digest.encode()
    objects[f"{repo}/_manifests/tags/{tag}/current/link"] = digest.encode()
    objects[f"{repo}/_manifests/tags/{tag}/index/sha256/{digest[7:]}/link"] = digest.encode()
    for blob in (cfg_digest, layer_digest):
        objects[bucket.link_key(repository, blob)] = blob.encode()
    for key, body in objects.items():
        writer.put_object(Bucket=BUCKET, Key=key, Body=body)
    return digest


class Counted(s3.Bucket):
    """A real bucket that counts what it asks the store (LISTs by prefix, GETs)."""
    opened: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lists, self.reads = [], []
        Counted.opened.append(self)

    def list(self, prefix, limit=None):
        self.lists.append((prefix[len(self.prefix):], limit))
        return super().list(prefix, limit)

    def read(self, key, limit):
        self.reads.append(key[len(self.prefix):])
        return super().read(key, limit)


def two_upstreams(tmp_path, endpoint: str, root: str):
    return settings.load(write_config(
        tmp_path / ".config", DOCKER_MIRROR_PATH=str(tmp_path / "mirror"), DOCKER_MIRROR_GHCR=True,
        DOCKER_MIRROR_STORAGE_FILESYSTEM=False, DOCKER_MIRROR_STORAGE_S3=True,
        DOCKER_MIRROR_S3_ENDPOINT=endpoint, DOCKER_MIRROR_S3_BUCKET=BUCKET,
        DOCKER_MIRROR_S3_ACCESS_KEY_ID=ACCESS_KEY, DOCKER_MIRROR_S3_SECRET_KEY=SECRET_KEY,
        DOCKER_MIRROR_S3_ROOT_DIRECTORY=root))


def test_a_status_and_the_scrapes_after_it_read_each_store_once(store, tmp_path, monkeypatch):
    cfg = two_upstreams(tmp_path, store.endpoint, "/once")
    writer = s3.client(cfg.storage)
    for key in ("dockerhub", "ghcr"):
        bucket = s3.Bucket(cfg.storage, key)
        put_image(writer, bucket, "team/app", "1", key)
        put_image(writer, bucket, "team/app", "2", key + "-two")
    Counted.opened = []
    monkeypatch.setattr(cache_store, "Bucket", Counted)
    stores = status.StoresCache(ttl=60)
    doc = status.gather(cfg, None, headroom=False, stores=stores)
    for up in doc["upstreams"]:
        assert [c["tag"] for c in up["cached"]] == ["1", "2"] and len(up["images"]) == 2, up
    # Per upstream: the probe's one-blob LIST and read; then one LIST of repositories/, one of
    # blobs/, each tag link and each manifest read once (the status's listing reuses the survey's).
    for key in ("dockerhub", "ghcr"):
        mine = [b for b in Counted.opened if f"/{key}/" in b.prefix + "/"]
        lists = sorted((entry for b in mine for entry in b.lists), key=str)
        assert lists == [("/blobs/", 1), ("/blobs/", None), ("/repositories/", None)], lists
        reads = [r for b in mine[1:] for r in b.reads]
        assert sorted(r for r in reads if "/tags/" in r) == [
            "/repositories/team/app/_manifests/tags/1/current/link",
            "/repositories/team/app/_manifests/tags/2/current/link"], reads
        assert len([r for r in reads if r.startswith("/blobs/")]) == 2, reads   # the two manifests
    # The metrics service's scrapes and page views within its interval ask the store nothing.
    asked = sum(len(b.lists) + len(b.reads) for b in Counted.opened)
    for _ in range(3):
        assert status.gather(cfg, None, headroom=False, stores=stores)["upstreams"] == doc["upstreams"]
    assert sum(len(b.lists) + len(b.reads) for b in Counted.opened) == asked
    # A tag pulled (the request log's reader) lists repositories/ only, never every blob; a
    # collection removing manifests one after another reads each tag link once.
    bucket = Counted(cfg.storage, "ghcr")
    digest = bucket.tags("team/app")["1"]
    assert bucket.lists == [("/repositories/", None)]
    bucket.remove_manifest("team/app", digest)
    bucket.remove_manifest("team/app", bucket.tags("team/app")["2"])
    assert len([r for r in bucket.reads if "/tags/" in r]) == 2 and bucket.tags("team/app") == {}


def test_one_store_failing_hides_no_other_upstreams_images(store, tmp_path, monkeypatch):
    cfg = two_upstreams(tmp_path, store.endpoint, "/halfdead")
    writer = s3.client(cfg.storage)
    pushed = {key: put_image(writer, s3.Bucket(cfg.storage, key), "team/app", "1", key)
              for key in ("dockerhub", "ghcr")}
    dead = replace(cfg.storage, s3_endpoint=f"http://127.0.0.1:{free_port()}")

    def ghcr_dies_after_the_probe(storage, key, timeout=10.0, attempts=3):
        # The probe (one attempt) finds ghcr's store answering; it is gone by the survey.
        return s3.Bucket(dead if key == "ghcr" and attempts > 1 else storage, key, timeout, attempts=1)

    monkeypatch.setattr(cache_store, "Bucket", ghcr_dies_after_the_probe)
    doc = status.gather(cfg, None, headroom=False)
    hub, ghcr = doc["upstreams"]
    assert [i["digest"] for i in hub["images"]] == [pushed["dockerhub"]]
    assert [c["tag"] for c in hub["cached"]] == ["1"] and hub["store"]["answering"]
    assert ghcr["store"]["answering"] is False and "127.0.0.1" in ghcr["store"]["error"]
    assert ghcr["images"] == [] and SECRET_KEY not in json.dumps(doc)
    assert status.exit_code(doc) == 1
    assert "ghcr" in status.format_text(doc)
    # A store that does not answer the probe at all: likewise, and it is not read further.
    monkeypatch.setattr(cache_store, "Bucket", lambda storage, key, timeout=10.0, attempts=3: s3.Bucket(
        dead if key == "ghcr" else storage, key, timeout, attempts=1))
    doc = status.gather(cfg, None, headroom=False)
    assert [i["digest"] for i in doc["upstreams"][0]["images"]] == [pushed["dockerhub"]]
    assert doc["upstreams"][1]["store"]["answering"] is False and status.exit_code(doc) == 1


def test_the_collection_ages_uploads_as_the_registrys_own_purger_does(tmp_path):
    # Two places say "abandoned": the registry's purger (filesystem) and the collection (object
    # stores, where that purger is off); they must agree.
    cfg = s3_settings(tmp_path, "http://127.0.0.1:9")
    text = render.registry_config(cfg, cfg.upstream("dockerhub"), major=2, mode=PULL_THROUGH, http_secret="s")
    age = yaml.safe_load(text)["storage"]["maintenance"]["uploadpurging"]["age"]
    assert age.endswith("h") and int(age[:-1]) * 3600 == cache_store.UPLOAD_AGE
