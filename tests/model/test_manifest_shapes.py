"""Manifests as a hostile registry may serve them: wrong shapes and path-like digests
are typed errors, never a traceback or a path outside the storage tree."""

import json

import pytest

from mirror import errors
from mirror.model import digests
from mirror.model.manifests import Manifest, blobs_of, children_of, select_platforms

GOOD = "sha256:" + "0123456789abcdef" * 4


def test_a_sha256_digest_is_exactly_sha256_and_64_lower_hex():
    assert digests.is_sha256(GOOD) and digests.require(GOOD, "x") == GOOD
    for bad in ("sha256:../../etc", "sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha512:" + "a" * 128,
                GOOD + "\n", None, 7, ["sha256:"]):
        assert not digests.is_sha256(bad)
        with pytest.raises(errors.InvalidDigest, match="layer of r"):
            digests.require(bad, "layer of r")


def test_a_bad_value_is_echoed_short():
    with pytest.raises(errors.InvalidDigest) as caught:
        digests.require("x" * 100_000, "w")
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("body", [b"[]", b'"s"', b"3", b"{" * 0 + b"[" * 100000 + b"]" * 100000, b"not json"])
def test_a_manifest_that_is_not_a_json_object_is_invalid(body):
    with pytest.raises(errors.InvalidManifest):
        Manifest(GOOD, "m", body).json


@pytest.mark.parametrize("manifest", [
    {"config": {"digest": "sha256:../../../x"}, "layers": []},
    {"config": {"digest": GOOD}, "layers": [{"digest": "sha256:../../x"}]},
    {"config": "x", "layers": []},
    {"config": {"digest": GOOD}, "layers": "abc"},
    {"config": {"digest": GOOD}, "layers": ["abc"]},
])
def test_blobs_of_a_bad_manifest_raise_typed_errors(manifest):
    with pytest.raises((errors.InvalidManifest, errors.InvalidDigest)):
        blobs_of(manifest)


def test_children_and_platforms_of_an_index_are_checked():
    index = {"manifests": [{"digest": "sha256:../../x", "platform": {"os": "linux", "architecture": "amd64"}}]}
    for call in (lambda: children_of(index), lambda: select_platforms(index, None)):
        with pytest.raises(errors.InvalidDigest):
            call()
    with pytest.raises(errors.InvalidManifest):
        select_platforms({"manifests": [{"digest": GOOD, "platform": "linux"}]}, None)
    good = {"manifests": [{"digest": GOOD, "platform": {"os": "linux", "architecture": "amd64"}}]}
    assert select_platforms(good, {"linux/amd64"}) == good["manifests"]
    assert blobs_of(json.loads(json.dumps({"config": {"digest": GOOD}, "layers": [{"digest": GOOD}]}))) \
        == [{"digest": GOOD}, {"digest": GOOD}]
