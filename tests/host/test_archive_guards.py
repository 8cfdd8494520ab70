"""Archives from elsewhere: a looping tar header, a huge or malformed docker-mirror.json,
digests that would name paths outside blobs/ — each refused as ArchiveError."""

import io
import json
import tarfile
import threading

import pytest

from mirror import errors
from mirror.host import archives
from mirror.model import archive_format

GOOD_DIGEST = "sha256:" + "c" * 64


def _tar(members: list[tuple[str, bytes]]) -> bytearray:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return bytearray(out.getvalue())


def _meta(**changes) -> bytes:
    meta = {"format": archive_format.FORMAT, "version": archive_format.FORMAT_VERSION,
            "reference": "docker.io/library/x:1", "platforms": "all",
            "top": {"digest": GOOD_DIGEST, "mediaType": "m", "size": 1}, "complete": True,
            "manifests": [{"digest": GOOD_DIGEST, "mediaType": "m", "size": 1}]}
    meta.update(changes)
    return json.dumps(meta).encode()


def _set_size(raw: bytearray, header_offset: int, size: int) -> None:
    """Write `size` (negative allowed: GNU base-256) into a header and fix its checksum."""
    header = raw[header_offset:header_offset + 512]
    header[124:136] = b"\xff" + (256 ** 11 + size).to_bytes(11, "big") if size < 0 else b"%011o\0" % size
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\0" % sum(header)
    raw[header_offset:header_offset + 512] = header


def _finishes(fn, seconds=10.0):
    outcome = {}

    def run():
        try:
            outcome["value"] = fn()
        except Exception as err:  # noqa: BLE001 - the test looks at it
            outcome["error"] = err
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "reading the archive never finished"
    return outcome


def test_a_negative_member_size_is_refused_not_looped_on(tmp_path):
    raw = _tar([(archive_format.META, b""), ("a", b""), ("blobs/sha256/x", b"")])
    _set_size(raw, 1024, -1024)    # the third header sends tarfile back to the second, forever
    # (the unguarded stdlib of this host's Python loops here: tarfile.getmembers never returns)
    path = tmp_path / "loop.tar"
    path.write_bytes(bytes(raw))
    outcome = _finishes(lambda: archives.open_archive(path))
    assert isinstance(outcome.get("error"), errors.ArchiveError)
    assert "CVE-2025-8194" in str(outcome["error"])
    assert _finishes(lambda: archives.read_metadata(path)) == {"value": None}


def test_a_huge_metadata_member_is_refused_unread(tmp_path):
    path = tmp_path / "big.tar"
    path.write_bytes(bytes(_tar([(archive_format.META, b" " * (archives.MAX_META + 1))])))
    with pytest.raises(errors.ArchiveError, match="refused"):
        archives.open_archive(path)
    assert archives.read_metadata(path) is None


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"[" * 100000 + b"]" * 100000, b"\xff\xfe"])
def test_metadata_that_is_not_an_object_is_an_archive_error(tmp_path, body):
    path = tmp_path / "odd.tar"
    path.write_bytes(bytes(_tar([(archive_format.META, body)])))
    with pytest.raises(errors.ArchiveError):
        archives.open_archive(path)
    assert archives.read_metadata(path) is None


@pytest.mark.parametrize("changes", [
    {"top": {"digest": "sha256:../../../../etc/passwd", "mediaType": "m"}},
    {"manifests": [{"digest": "sha256:" + "C" * 64, "mediaType": "m"}]},
    {"manifests": "all"}, {"top": 7}, {"manifests": [{"digest": GOOD_DIGEST, "mediaType": 3}]},
])
def test_digests_and_entries_are_checked_before_they_name_members(tmp_path, changes):
    path = tmp_path / "bad.tar"
    path.write_bytes(bytes(_tar([(archive_format.META, _meta(**changes))])))
    with pytest.raises(errors.ArchiveError):
        archives.open_archive(path)


def test_a_good_metadata_opens(tmp_path):
    path = tmp_path / "good.tar"
    path.write_bytes(bytes(_tar([(archive_format.META, _meta())])))
    assert archives.open_archive(path).meta["top"]["digest"] == GOOD_DIGEST


def test_a_member_name_is_made_from_a_sha256_digest_only():
    assert archive_format.blob_path(GOOD_DIGEST) == "blobs/sha256/" + "c" * 64
    with pytest.raises(errors.InvalidDigest):
        archive_format.blob_path("sha256:../../../../tmp/x")
