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

import time

import pytest

from mirror.config import settings
from mirror.model.settings import Storage
from mirror.net import s3
from mirror.services import cache_store
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
    assert bucket.read_manifest(A) == b"x" * 10 and bucket.blob_size(LAYER) == 5000
    assert abs(bucket.cached_since("library/app", A) - time.time()) < 120
    held = bucket.usage()
    assert held >= 10 + 20 + 30 + 40 + 5000 + 700

    # A manifest goes: its revision link and the tag on it, and its entry under the other tag.
    assert bucket.remove_manifest("library/app", A) == ["1"]
    bucket.forget()
    assert bucket.revisions("library/app") == [B] and bucket.tags("library/app") == {"2": B}
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
