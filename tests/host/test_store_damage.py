"""One bad entry of a storage tree is named and skipped, never a failure of the rest:
link files cut short or naming another digest, a manifest that is not JSON or names a
path-like digest (mirror.host.storage.damaged_links, mirror.model.manifests.stored_problem),
a manifest blob that cannot be read; the product's own JSON records cut short."""

import json

from mirror.config import settings
from mirror.host import storage, usage
from mirror.host.layout import Layout
from mirror.host.storage import StorageTree
from mirror.model import digests, traffic
from mirror.model.manifests import stored_problem
from mirror.services import lifecycle, observe, status
from support.configs import write_config

TRAVERSAL = "sha256:../../../../etc/evil"


def manifest(layer):
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"digest": "sha256:" + "c" * 64, "size": 2},
                       "layers": [{"digest": layer, "size": 1}]}).encode()


def store(tree: StorageTree, repository: str, body: bytes, tag: str | None = None) -> str:
    digest = digests.of(body)
    data = tree.blob_data(digest)
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(body)
    link = tree.revision_link(repository, digest)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.write_text(digest)
    if tag:
        tag_link = tree.tag_link(repository, tag)
        tag_link.parent.mkdir(parents=True, exist_ok=True)
        tag_link.write_text(digest)
    return digest


def test_stored_manifests_with_bad_shapes_or_digests_are_named():
    assert stored_problem(manifest("sha256:" + "a" * 64)) is None
    assert "not a digest" in stored_problem(manifest(TRAVERSAL))
    assert "not JSON" in stored_problem(b"")                      # a blob cut to nothing
    assert "not JSON" in stored_problem(b'{"layers": [')
    assert "not an object" in stored_problem(b"[]")
    assert "cannot be read" in stored_problem(None)
    assert "not a digest" in stored_problem(json.dumps({"manifests": [{"digest": TRAVERSAL}]}).encode())
    assert stored_problem(json.dumps({"schemaVersion": 1, "fsLayers": []}).encode()) is None


def test_damaged_links_are_named_and_removed_one_by_one(tmp_path):
    tree = StorageTree(tmp_path)
    good = store(tree, "library/good", manifest("sha256:" + "a" * 64), "1")
    cut = store(tree, "library/cut", manifest("sha256:" + "b" * 64), "1")
    tree.tag_link("library/cut", "1").write_text("sha256:12")           # a tag link cut short
    other = store(tree, "library/other", manifest("sha256:" + "d" * 64), "1")
    tree.revision_link("library/other", other).write_text(good)         # a revision naming another digest
    layer = tree.layer_link("library/good", "sha256:" + "a" * 64)
    layer.parent.mkdir(parents=True)
    layer.write_text("sha2")                                            # a layer link cut short
    assert storage.damaged_links(tmp_path, "library/good") == [
        storage.DamagedLink("library/good", "layer", "sha256:" + "a" * 64, "does not name its digest "
                            "(holds 'sha2')")]
    [tag] = storage.damaged_links(tmp_path, "library/cut")
    assert (tag.kind, tag.name) == ("tag", "1") and "not a digest" in tag.reason
    [revision] = storage.damaged_links(tmp_path, "library/other")
    assert revision.kind == "revision" and revision.name == other
    # The readers go on around them.
    assert [t.repository for t in storage.cached_tags(tmp_path)] == ["library/good", "library/other"]
    for repository in ("library/good", "library/cut", "library/other"):
        for link in storage.damaged_links(tmp_path, repository):
            storage.remove_damaged(tmp_path, link)
        assert storage.damaged_links(tmp_path, repository) == []
    assert storage.revisions(tmp_path, "library/good") == [good]
    assert storage.revisions(tmp_path, "library/cut") == [cut]          # only its tag went
    assert storage.revisions(tmp_path, "library/other") == []
    assert storage.tags(tmp_path, "library/other") == {}


def test_the_products_own_records_when_corrupt_are_rebuilt_not_fatal(tmp_path):
    folder = usage.lifecycle_dir(tmp_path)
    folder.mkdir(parents=True)
    for name in ("usage-dockerhub.json", "pins.json", "collections.json"):
        (folder / name).write_bytes(b'{"cursor_ns": 12, "used": {"a": ')   # cut short by a full disk
    assert usage.read_usage(tmp_path, "dockerhub") == usage.Usage()
    assert usage.read_pins(tmp_path) == {}
    assert usage.read_collections(tmp_path)["collections"] == 0
    (folder / "pins.json").write_text(json.dumps({"x": {"digests": "not a list"}, "y": []}))
    assert usage.read_pins(tmp_path) == {}


def test_the_refresh_and_metrics_records_when_corrupt_are_named_or_rebuilt(tmp_path):
    s = settings.load(write_config(tmp_path / ".config", DOCKER_MIRROR_PATH=str(tmp_path / "mirror")))
    layout = Layout.of(s)
    layout.last_refresh.parent.mkdir(parents=True, exist_ok=True)
    layout.last_refresh.write_bytes(b'{"result": "ok", "fail')             # cut short
    record = status.last_refresh(layout)
    assert record["result"] == "unreadable" and str(layout.last_refresh) in record["error"]
    folder = observe.observe_dir(s)
    folder.mkdir(parents=True)
    (folder / "traffic-dockerhub.json").write_bytes(b'{"hits": 3, "mis')
    (folder / "history.json").write_bytes(b'[{"t": 1, "hits"')
    assert observe.read_traffic(s, "dockerhub").to_json() == traffic.Traffic().to_json()
    assert observe.read_history(s) == []
    (folder / "history.json").write_text(json.dumps([{"t": 1.0, "hits": 2}, "junk", {"t": "x"}]))
    assert observe.read_history(s) == [{"t": 1.0, "hits": 2}]   # the good samples kept


def test_a_manifest_blob_that_cannot_be_read_fails_only_itself(tmp_path):
    s = settings.load(write_config(tmp_path / ".config", DOCKER_MIRROR_PATH=str(tmp_path / "mirror")))
    tree = StorageTree(Layout.of(s).storage_dir(s.upstreams[0]))
    good = store(tree, "library/good", manifest("sha256:" + "a" * 64), "1")
    bad = store(tree, "library/bad", manifest("sha256:" + "b" * 64), "1")
    data = tree.blob_data(bad)
    data.unlink()
    data.mkdir()                                     # there, but no file to read
    found = lifecycle.survey(s, log=lambda _: None)
    assert [(i.repository, i.digest) for i in found.images] == [("library/good", good)]
    assert [(d.repository, d.name) for d in found.damaged] == [("library/bad", bad)]
    assert "gone" in found.damaged[0].reason
