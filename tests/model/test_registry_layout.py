"""distribution's storage layout (mirror.model.registry_layout), the one place its paths are
built and read back: the filesystem tree (tests/host/test_storage_tree.py checks it against a
real registry's files) and the s3 and azure stores (tests/net/test_s3_bucket.py,
test_object_store_lifecycle.py) take their paths and keys from it."""

import pytest

from mirror.model import registry_layout as L

HEX = "ab" + "0" * 62
DIGEST = f"sha256:{HEX}"


def test_paths_are_distributions():
    assert L.blob_data(DIGEST) == f"blobs/sha256/ab/{HEX}/data"
    assert L.layer_link("a/b", DIGEST) == f"repositories/a/b/_layers/sha256/{HEX}/link"
    assert L.revision_link("a/b", DIGEST) == f"repositories/a/b/_manifests/revisions/sha256/{HEX}/link"
    assert L.tag_link("a/b", "v1") == "repositories/a/b/_manifests/tags/v1/current/link"
    assert L.tag_index_link("a/b", "v1", DIGEST) == \
        f"repositories/a/b/_manifests/tags/v1/index/sha256/{HEX}/link"
    assert L.uploads("a/b") == "repositories/a/b/_uploads"


@pytest.mark.parametrize("digest", ["sha256:../../etc", "sha256:" + "A" * 64, "md5:" + "0" * 32,
                                    "sha256:" + "0" * 63 + "/", HEX, ""])
def test_a_malformed_digest_never_becomes_a_path(digest):
    for build in (L.blob_data, lambda d: L.layer_link("r", d), lambda d: L.revision_link("r", d),
                  lambda d: L.tag_index_link("r", "v1", d)):
        with pytest.raises(ValueError, match="not a digest"):
            build(digest)


def test_paths_read_back_name_their_repository_link_and_blob():
    for name in ("alpine", "library/alpine", "a/b/c"):
        for path, link in ((L.revision_link(name, DIGEST), ("revision", DIGEST)),
                           (L.layer_link(name, DIGEST), ("layer", DIGEST)),
                           (L.tag_link(name, "v1"), ("tag", "v1")),
                           (L.tag_index_link(name, "v1", DIGEST), None),   # history, not a tag
                           (f"{L.uploads(name)}/id/data", None)):
            found_name, rest = L.repository_of(path)
            assert found_name == name and L.link_of(rest) == link
    assert L.blob_of(L.blob_data(DIGEST)) == DIGEST


def test_a_tags_index_links_read_back_as_its_history():
    for name in ("alpine", "a/b/c"):
        _, rest = L.repository_of(L.tag_index_link(name, "v1", DIGEST))
        assert L.tag_index_of(rest) == ("v1", DIGEST)
        for other in (L.tag_link(name, "v1"), L.revision_link(name, DIGEST), L.layer_link(name, DIGEST)):
            assert L.tag_index_of(L.repository_of(other)[1]) is None


@pytest.mark.parametrize("rest", [["_manifests", "tags", "v1", "index", "sha256", "..", "link"],
                                  ["_manifests", "tags", "v1", "index", "sha256", HEX, "data"],
                                  ["_manifests", "tags", "v1", "current", "sha256", HEX, "link"]])
def test_an_index_key_naming_no_valid_digest_is_no_history(rest):
    assert L.tag_index_of(rest) is None


@pytest.mark.parametrize("path", ["repositories/_layers/sha256/x/link",   # no name
                                  "blobs/sha256/ab/x/data", "repositories"])
def test_a_path_without_a_repository_names_none(path):
    assert L.repository_of(path) is None


@pytest.mark.parametrize("rest", [["_manifests", "revisions", "sha256", "..", "link"],
                                  ["_layers", "sha256", "A" * 64, "link"],
                                  ["_layers", "sha256", HEX, "data"], []])
def test_a_key_naming_no_valid_digest_is_no_link(rest):
    assert L.link_of(rest) is None


@pytest.mark.parametrize("path", ["blobs/sha256/ab/../data", f"blobs/sha256/ab/{HEX}/link",
                                  f"blobs/sha256/{HEX}/data", f"repositories/a/blobs/sha256/ab/{HEX}/data"])
def test_only_a_blobs_data_names_a_blob(path):
    assert L.blob_of(path) is None
