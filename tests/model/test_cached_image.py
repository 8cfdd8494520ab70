"""The one rule of check-mirror's IMAGE_EXISTS (mirror.model.cached_image), on a storage held
in a dict: what a registry must hold for a pull to be served from its cache alone. The same
rule reads the filesystem tree (tests/commands/test_storage_status.py) and the s3 and azure
stores (tests/commands/test_s3_storage.py, test_azure_storage.py) of real registries."""

import hashlib
import json

import pytest

from mirror.model import cached_image as C
from mirror.model import registry_layout as L
from mirror.model.manifests import MAX_MANIFEST

REPO = "team/app"


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class Files:
    """paths -> bytes; counts the reads, so a test can see what the rule asked."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.asked: list[str] = []

    def read(self, path, limit):
        self.asked.append(path)
        body = self.files.get(path)
        return None if body is None else body[:limit]

    def exists(self, path):
        self.asked.append(path)
        return path in self.files

    # what a registry writes when it caches
    def blob(self, body: bytes, repository: str | None = REPO) -> str:
        digest = digest_of(body)
        self.files[L.blob_data(digest)] = body
        if repository:
            self.files[L.layer_link(repository, digest)] = digest.encode()
        return digest

    def manifest(self, doc: dict, tag: str | None = None, repository: str = REPO) -> str:
        body = json.dumps(doc).encode()
        digest = digest_of(body)
        self.files[L.blob_data(digest)] = body
        self.files[L.revision_link(repository, digest)] = digest.encode()
        if tag:
            self.files[L.tag_link(repository, tag)] = digest.encode() + b"\n"
        return digest


def image(files: Files, name: str, tag: str | None = None) -> tuple[str, list[str]]:
    config = files.blob(f"config {name}".encode())
    layers = [files.blob(f"layer {name} {n}".encode()) for n in range(2)]
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"digest": config, "size": 1},
           "layers": [{"digest": d, "size": 1} for d in layers]}
    return files.manifest(doc, tag), [config, *layers]


def index(files: Files, children: dict[str, str], tag: str | None = None) -> str:
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
           "manifests": [{"digest": d, "size": 1, "platform": {"os": p.split("/")[0],
                                                               "architecture": p.split("/")[1]}}
                         for p, d in children.items()]}
    return files.manifest(doc, tag)


def cached(files, tag=None, digest=None, repository=REPO):
    return C.image_cached(files, repository, tag, digest)


def test_an_image_with_its_manifest_config_and_layers_is_cached_by_tag_and_by_digest():
    files = Files()
    digest, _ = image(files, "one", tag="v1")
    assert cached(files, tag="v1") and cached(files, digest=digest)
    assert cached(files, tag="other", digest=digest)   # the digest wins over the tag
    assert not cached(files, tag="v2") and not cached(files)
    assert not cached(files, tag="v1", repository="team/other")   # another repository's


@pytest.mark.parametrize("missing", ["config", "layer data", "layer link"])
def test_a_manifest_without_all_its_blobs_is_not_cached(missing):
    # a manifest fetched alone (docker manifest inspect), or a layer dropped by the collection
    files = Files()
    digest, (config, layer, _) = image(files, "one", tag="v1")
    del files.files[{"config": L.blob_data(config), "layer data": L.blob_data(layer),
                     "layer link": L.layer_link(REPO, layer)}[missing]]
    assert not cached(files, tag="v1") and not cached(files, digest=digest)


def test_a_blob_held_for_another_repository_only_is_not_served_to_this_one():
    files = Files()
    digest, (_, layer, _) = image(files, "one", tag="v1")
    del files.files[L.layer_link(REPO, layer)]
    files.files[L.layer_link("team/other", layer)] = layer.encode()
    assert not cached(files, tag="v1")


@pytest.mark.parametrize("missing", ["revision link", "manifest blob"])
def test_a_tag_whose_manifest_is_gone_is_not_cached(missing):
    files = Files()
    digest, _ = image(files, "one", tag="v1")
    del files.files[L.revision_link(REPO, digest) if missing == "revision link" else L.blob_data(digest)]
    assert not cached(files, tag="v1") and not cached(files, digest=digest)


@pytest.mark.parametrize("link", [b"", b"not a digest", b"sha256:../../x", b"sha256:" + b"A" * 64])
def test_a_malformed_tag_link_is_not_cached_and_never_becomes_a_path(link):
    files = Files()
    image(files, "one", tag="v1")
    files.files[L.tag_link(REPO, "v1")] = link
    assert not cached(files, tag="v1")
    assert all(".." not in p for p in files.asked)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"layers": [{"digest": "sha256:../x"}]}',
                                  b'{"manifests": [{"digest": 3}]}', b"[" * 100_000])
def test_a_damaged_manifest_is_not_cached(body):
    files = Files()
    digest = digest_of(body)
    files.files[L.blob_data(digest)] = body
    files.files[L.revision_link(REPO, digest)] = digest.encode()
    assert not cached(files, digest=digest)


def test_an_index_is_cached_when_one_platform_is_cached_in_full():
    files = Files()
    amd64, _ = image(files, "amd64")
    arm64, (_, arm_layer, _) = image(files, "arm64")
    top = index(files, {"linux/amd64": amd64, "linux/arm64": arm64}, tag="multi")
    assert cached(files, tag="multi") and cached(files, digest=top)
    # a pull-through mirror holds only the platforms its clients pulled
    del files.files[L.revision_link(REPO, amd64)]
    assert cached(files, tag="multi")
    del files.files[L.blob_data(arm_layer)]
    assert not cached(files, tag="multi")   # the index alone serves no pull


def test_an_attestation_is_no_platform():
    files = Files()
    attestation, _ = image(files, "attestation")
    files.files[L.blob_data(attestation)] = json.dumps({"schemaVersion": 2, "layers": []}).encode()
    top = index(files, {"unknown/unknown": attestation})
    assert not cached(files, digest=top)


def test_an_index_inside_an_index_is_not_followed():
    files = Files()
    child, _ = image(files, "one")
    inner = index(files, {"linux/amd64": child})
    outer = index(files, {"linux/amd64": inner})
    assert cached(files, digest=inner) and not cached(files, digest=outer)


def test_foreign_layers_are_not_looked_for_and_schema1_layers_are():
    files = Files()
    config, layer = files.blob(b"config"), files.blob(b"layer")
    foreign = digest_of(b"windows base layer, fetched from its URL")
    digest = files.manifest({"schemaVersion": 2, "config": {"digest": config}, "layers": [
        {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": foreign},
        {"digest": layer}]})
    assert cached(files, digest=digest)
    old = files.manifest({"schemaVersion": 1, "fsLayers": [{"blobSum": layer}, {"blobSum": foreign}]})
    assert not cached(files, digest=old)
    files.blob(b"windows base layer, fetched from its URL")
    assert cached(files, digest=old)


def test_the_manifest_is_read_within_distributions_limit_and_link_files_are_read_small():
    files = Files()
    digest, _ = image(files, "one", tag="v1")
    limits = []
    real = files.read
    files.read = lambda path, limit: limits.append((path, limit)) or real(path, limit)
    assert cached(files, tag="v1")
    assert dict(limits) == {L.tag_link(REPO, "v1"): 200, L.blob_data(digest): MAX_MANIFEST}
