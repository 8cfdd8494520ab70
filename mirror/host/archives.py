"""Image archive files under images/archives: written atomically, read in place,
checked against their .sha256, pruned (the format is mirror.model.archive_format)."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArchiveError, InvalidDigest, InvalidReference
from ..model import digests, images
from ..model.archive_format import (ARCHIVE_NAME, CHECKSUM_LINE, CHECKSUM_SUFFIX, FORMAT,
                                    FORMAT_VERSION, META, SUFFIX, TarWriter, blob_path,
                                    checksum_line, checksum_path)
from .files import atomic_write
from .layout import Layout

CHUNK = 4 << 20
STALE_TEMP_SECONDS = 24 * 3600
MAX_META = 1 << 20          # bytes of docker-mirror.json: a few kB in any archive we write
MAX_MEMBERS = 100_000


def _members(tar: tarfile.TarFile, limit: int = MAX_MEMBERS):
    """The members of `tar`, one by one, refusing a header that moves backwards.

    CVE-2025-8194: before Python 3.11.14 / 3.12.12 / 3.13.6, a member with a
    negative size sends tarfile's offset back to an earlier header, and
    getmembers() loops forever. This host's Python may predate the fix, so
    every archive is read through here: sizes must be >= 0 and each header
    must lie beyond the last.
    """
    last = -1
    for _ in range(limit):
        member = tar.next()
        if member is None:
            return
        if member.size < 0 or member.offset <= last:
            raise ArchiveError(f"tar header of {member.name[:80]!r} at byte {member.offset}: "
                               f"size {member.size} or position invalid (CVE-2025-8194 guard)")
        last = member.offset
        yield member
    raise ArchiveError(f"more than {limit} members: not an archive written by 'pull --archive'")


def _meta(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict:
    if member.size > MAX_META:
        raise ArchiveError(f"{META} of {member.size} bytes refused (at most {MAX_META})")
    try:
        meta = json.loads(tar.extractfile(member).read(MAX_META))
    except (ValueError, RecursionError) as err:
        raise ArchiveError(f"{META} is not JSON ({err.__class__.__name__})") from None
    if not isinstance(meta, dict):
        raise ArchiveError(f"{META} is a JSON {type(meta).__name__}, not an object")
    return meta


def _check_digests(meta: dict) -> None:
    """Every digest docker-mirror.json names is a sha256 digest, before it names a member."""
    top, manifests = meta.get("top"), meta.get("manifests")
    if not isinstance(top, dict) or not isinstance(manifests, list) \
            or not all(isinstance(m, dict) for m in manifests):
        raise ArchiveError(f"{META}: 'top' or 'manifests' missing or malformed")
    try:
        for entry in (top, *manifests):
            digests.require(entry.get("digest"), f"{META}: a manifest digest")
            if not isinstance(entry.get("mediaType", ""), str):
                raise ArchiveError(f"{META}: a mediaType that is not a string")
    except InvalidDigest as err:
        raise ArchiveError(str(err)) from None


def write(path: Path, fill: Callable[[TarWriter], None]) -> tuple[int, str]:
    """Write the archive `fill(tar)` makes into `path` through a temp file, and its
    .sha256; returns (size, sha256 hex). A failure leaves the old archive as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb", buffering=CHUNK) as out:
            tar = TarWriter(out)
            fill(tar)
            tar.close()
            out.flush()
            os.fsync(out.fileno())
        # The checksum first: a crash between the two renames leaves a
        # mismatch that restore refuses, never an archive taken for good.
        atomic_write(checksum_path(path), checksum_line(tar.hash.hexdigest(), path.name))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tar.size, tar.hash.hexdigest()


def read_metadata(path: Path) -> dict | None:
    """docker-mirror.json of an archive (its first member), or None."""
    try:
        with tarfile.open(path, "r:") as tar:
            first = next(_members(tar, limit=1), None)
            if first is None or first.name != META or not first.isfile():
                return None
            return _meta(tar, first)
    except (OSError, tarfile.TarError, ArchiveError):
        return None


def prune_archives(layout: Layout, keep: set[str], log=print) -> list[str]:
    """Remove archives (and their .sha256) of images no longer listed; returns their names."""
    removed = []
    if not layout.archives_dir.is_dir():
        return removed
    now = time.time()
    for path in sorted(layout.archives_dir.iterdir()):
        if ARCHIVE_NAME.match(path.name) and path.name not in keep:
            path.unlink(missing_ok=True)
            checksum_path(path).unlink(missing_ok=True)
            removed.append(path.name)
            log(f"pruned {path.name}")
        elif path.name.endswith(SUFFIX + CHECKSUM_SUFFIX) and not path.with_suffix("").exists() \
                and ARCHIVE_NAME.match(path.name[:-len(CHECKSUM_SUFFIX)]):
            path.unlink(missing_ok=True)  # the checksum of an archive already gone
        elif path.name.startswith(".") and path.name.endswith(".tmp") and ARCHIVE_NAME.match(
                path.name[1:].rsplit(SUFFIX + ".", 1)[0] + SUFFIX) and now - path.stat().st_mtime > STALE_TEMP_SECONDS:
            path.unlink(missing_ok=True)  # left by a run that was killed mid-write
    return removed


def verify_checksum(path: Path) -> str:
    """Check `path` against its .sha256; returns the hex digest or raises ArchiveError."""
    try:
        line = checksum_path(path).read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError, UnicodeDecodeError):
        raise ArchiveError(f"no readable {checksum_path(path).name} beside it") from None
    match = CHECKSUM_LINE.match(line)
    if not match or match.group(2) != path.name:
        raise ArchiveError(f"{checksum_path(path).name} is not '<sha256>  {path.name}'")
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
    if hasher.hexdigest() != match.group(1):
        raise ArchiveError(f"checksum mismatch (expected {match.group(1)[:16]}..., "
                           f"got {hasher.hexdigest()[:16]}...): damaged or altered, not restored")
    return match.group(1)


class Section:
    """One member's bytes, read in place from the archive: an upload body of known length.

    Not an io.RawIOBase: requests sizes a body by len() and tell(), and the
    tell() of a RawIOBase without seek() fails, which would make it send a
    chunked body instead of one with a Content-Length.
    """

    def __init__(self, path: Path, offset: int, size: int):
        self.file = open(path, "rb")
        self.file.seek(offset)
        self.left = size
        self.size = size

    def __len__(self) -> int:
        return self.size

    def tell(self) -> int:
        return self.size - self.left

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.file.read(n)
        self.left -= len(data)
        return data

    def __iter__(self):
        while chunk := self.read(CHUNK):
            yield chunk

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "Section":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Archive:
    path: Path
    meta: dict
    members: dict[str, tarfile.TarInfo]

    @property
    def ref(self) -> images.ImageRef:
        return images.parse(self.meta["reference"])

    def read(self, digest: str) -> bytes:
        member = self.member(digest)
        with Section(self.path, member.offset_data, member.size) as section:
            data = section.read()
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise ArchiveError(f"{blob_path(digest)} does not match its digest")
        return data

    def member(self, digest: str) -> tarfile.TarInfo:
        member = self.members.get(blob_path(digest))
        if member is None or not member.isfile():
            raise ArchiveError(f"{blob_path(digest)} missing from the archive")
        return member

    def section(self, digest: str) -> Section:
        member = self.member(digest)
        return Section(self.path, member.offset_data, member.size)


def open_archive(path: Path) -> Archive:
    """Read an archive's table of members (no extraction: nothing lands on disk)."""
    try:
        with tarfile.open(path, "r:") as tar:
            members = {m.name: m for m in _members(tar)}
            if META not in members:
                raise ArchiveError(f"no {META}: not an archive written by 'pull --archive'")
            meta = _meta(tar, members[META])
    except (OSError, tarfile.TarError) as err:
        raise ArchiveError(f"cannot read it as a tar ({err})") from None
    if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise ArchiveError(f"{META}: unknown format {meta.get('format')!r} version {meta.get('version')!r}")
    try:
        images.parse(meta["reference"])
    except (KeyError, TypeError, InvalidReference) as err:
        raise ArchiveError(f"{META}: bad reference ({err})") from None
    _check_digests(meta)
    return Archive(path, meta, members)


def archive_paths(layout: Layout, paths) -> list[Path]:
    if not paths:
        return sorted(p for p in layout.archives_dir.glob(f"*{SUFFIX}") if p.is_file()) \
            if layout.archives_dir.is_dir() else []
    found = []
    for given in paths:
        path = Path(given)
        if not path.exists() and (layout.archives_dir / path).exists():
            path = layout.archives_dir / path  # a bare name from 'make docker-mirror-restore'
        found.append(path)
    return found
