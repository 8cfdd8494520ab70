"""Image list files as people write them: bad bytes, a BOM, junk lines, huge files."""

from mirror.config import image_lists
from mirror.config.image_lists import read_list_file


def test_a_bom_does_not_spoil_line_one(tmp_path):
    path = tmp_path / "list"
    path.write_bytes(b"\xef\xbb\xbfalpine:3.19\r\nbusybox\n")
    assert read_list_file(str(path)) == ([("alpine:3.19", f"{path}:1"), ("busybox", f"{path}:2")], [])


def test_bad_bytes_spoil_their_line_only(tmp_path):
    path = tmp_path / "list"
    path.write_bytes(b"alpine\nbusy\xffbox\n# caf\xe9\nnginx\n")
    found, errors = read_list_file(str(path))
    assert found == [("alpine", f"{path}:1"), ("nginx", f"{path}:4")]
    assert errors == [f"{path}:2: not UTF-8 (byte 0xff at column 5): 'busy\ufffdbox'"]  # not the comment


def test_a_junk_line_is_echoed_short(tmp_path):
    path = tmp_path / "list"
    path.write_text("x" * 100_000 + "\nalpine\n")
    found, errors = read_list_file(str(path))
    assert found == [("alpine", f"{path}:2")]
    assert len(errors) == 1 and "a line of 100000 characters (at most 512)" in errors[0]
    assert len(errors[0]) < 200 + len(str(path))


def test_a_huge_file_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(image_lists, "MAX_LIST_BYTES", 1000)
    path = tmp_path / "list"
    path.write_text("alpine\n" * 200)
    assert read_list_file(str(path)) == ([], [f"{path}: image list over 1000 bytes: not read"])
