"""The v2 storage tree: every path built in one place, checked against a real registry's tree."""

import hashlib
import json

import pytest

from mirror.host import storage
from mirror.host.storage import StorageTree
from mirror.model.images import parse
from mirror.model.manifests import Manifest
from support.upstream import push_image

HEX = "ab" + "0" * 62
DIGEST = f"sha256:{HEX}"


def test_paths_follow_distributions_layout(tmp_path):
    tree = StorageTree(tmp_path)
    v2 = tmp_path / "docker/registry/v2"
    assert tree.blob_data(DIGEST) == v2 / f"blobs/sha256/ab/{HEX}/data"
    assert tree.layer_link("library/nginx", DIGEST) == v2 / f"repositories/library/nginx/_layers/sha256/{HEX}/link"
    assert tree.revision_link("a/b", DIGEST) == v2 / f"repositories/a/b/_manifests/revisions/sha256/{HEX}/link"
    assert tree.tag_link("a/b", "v1") == v2 / "repositories/a/b/_manifests/tags/v1/current/link"
    assert tree.tag_index_link("a/b", "v1", DIGEST) == \
        v2 / f"repositories/a/b/_manifests/tags/v1/index/sha256/{HEX}/link"
    assert tree.uploads("a/b") == v2 / "repositories/a/b/_uploads"
    assert tree.scheduler_state == tmp_path / "scheduler-state.json"


@pytest.mark.parametrize("digest", ["sha256:" + "A" * 64, "sha256:abc", "md5:" + "0" * 32, "sha256:../../x",
                                    "sha256:" + "0" * 63 + "/", HEX, ""])
def test_a_malformed_digest_never_becomes_a_path(tmp_path, digest):
    tree = StorageTree(tmp_path)
    for build in (tree.blob_data, lambda d: tree.layer_link("r", d), lambda d: tree.revision_link("r", d)):
        with pytest.raises(ValueError, match="not a digest"):
            build(digest)


def test_paths_match_what_a_real_registry_wrote(upstream):
    digest = push_image(upstream.url, "team/app", "v1")
    tree = StorageTree(upstream.storage)
    assert tree.tag_link("team/app", "v1").read_text() == digest
    assert tree.revision_link("team/app", digest).read_text() == digest
    manifest = json.loads(tree.blob_data(digest).read_bytes())
    for layer in manifest["layers"]:
        assert storage.blob_linked(upstream.storage, "team/app", layer["digest"])
    assert storage.has_image(upstream.storage, parse("127.0.0.1/team/app:v1"))
    assert [t.tag for t in storage.cached_tags(upstream.storage)] == ["v1"]


def test_link_blob_lets_another_repository_serve_a_stored_blob(upstream):
    digest = push_image(upstream.url, "team/app", "v1")
    layer = json.loads(StorageTree(upstream.storage).blob_data(digest).read_bytes())["layers"][0]["digest"]
    assert not storage.blob_linked(upstream.storage, "other/app", layer)
    storage.link_blob(upstream.storage, "other/app", layer)
    assert storage.blob_linked(upstream.storage, "other/app", layer)
    import requests
    answer = requests.get(f"{upstream.url}/v2/other/app/blobs/{layer}", timeout=5)
    assert answer.status_code == 200 and "sha256:" + hashlib.sha256(answer.content).hexdigest() == layer


def test_link_partial_index_is_served_as_the_tag(upstream):
    child = push_image(upstream.url, "team/multi", "child")
    child_body = StorageTree(upstream.storage).blob_data(child).read_bytes()
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"mediaType": json.loads(child_body)["mediaType"], "digest": child,
                                       "size": len(child_body),
                                       "platform": {"os": "linux", "architecture": "amd64"}},
                                      {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "digest": DIGEST, "size": 1,  # a platform that is absent
                                       "platform": {"os": "linux", "architecture": "arm64"}}]}).encode()
    top = Manifest("sha256:" + hashlib.sha256(index).hexdigest(), "application/vnd.oci.image.index.v1+json", index)
    storage.link_partial_index(upstream.storage, "team/multi", "v2", top)
    assert ("team/multi", "v2", top.digest) in {(t.repository, t.tag, t.digest)
                                                for t in storage.cached_tags(upstream.storage)}
    import requests
    answer = requests.get(f"{upstream.url}/v2/team/multi/manifests/v2", timeout=5,
                          headers={"Accept": "application/vnd.oci.image.index.v1+json"})
    assert answer.status_code == 200 and answer.content == index
