"""The traffic count's view of the cache (services.observe._stored_blobs): every blob's
data file distribution's layout names, read back through model.registry_layout, and
nothing else under blobs/ (a stray or half-written directory is not a blob)."""

import hashlib

from mirror.host.storage import StorageTree
from mirror.services.observe import _stored_blobs


def test_stored_blobs_are_the_data_files_the_layout_names(tmp_path):
    tree = StorageTree(tmp_path)
    blobs = {}
    for body in (b"layer one", b"a config blob, longer"):
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        path = tree.blob_data(digest)
        path.parent.mkdir(parents=True)
        path.write_bytes(body)
        blobs[digest] = len(body)
    stray = tree.v2 / "blobs/sha256/zz/not-a-digest/data"      # not a digest: no path of the layout
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")
    (tree.v2 / "blobs/sha256/ab/" / ("ab" + "0" * 62)).mkdir(parents=True)   # no data yet
    assert _stored_blobs(tree) == blobs
