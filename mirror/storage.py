"""A distribution filesystem storage tree: what it holds, and blob links.

A pull-through registry answers an empty /v2/_catalog, so what it has cached
is read from its storage tree, laid out by distribution as:

    docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
    docker/registry/v2/repositories/<name>/_manifests/revisions/sha256/<hex>/link
    docker/registry/v2/blobs/sha256/<hex[:2]>/<hex>/data

A link file holds a digest (`sha256:<hex>`). A tag is served only when its
tag link, the repository's revision link and the manifest blob all exist
(distribution resolves a manifest through the revision link), so content
that expired or was deleted is not listed as cached. Listing reads only
directory entries and small link files, never blob data.

The one write, `link_blob`, is the one distribution itself makes when a
repository gains a blob the store already holds (a cross-repository mount):
    docker/registry/v2/repositories/<name>/_layers/sha256/<hex>/link
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .fsutil import atomic_write
from .images import ImageRef

V2 = Path("docker", "registry", "v2")
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


@dataclass(frozen=True, order=True)
class CachedTag:
    repository: str
    tag: str
    digest: str


def _read_link(path: Path) -> str | None:
    """The digest in a link file, or None when absent, unreadable or malformed."""
    try:
        with open(path, "rb") as f:
            text = f.read(200).decode("ascii", "replace").strip()
    except OSError:
        return None
    return text if _DIGEST.fullmatch(text) else None


def _blob_exists(root: Path, digest: str) -> bool:
    hex_ = digest.split(":", 1)[1]
    return os.path.isfile(root / V2 / "blobs" / "sha256" / hex_[:2] / hex_ / "data")


def _revision_exists(repo_dir: Path, digest: str) -> bool:
    hex_ = digest.split(":", 1)[1]
    return os.path.isfile(repo_dir / "_manifests" / "revisions" / "sha256" / hex_ / "link")


def _manifest_present(root: Path, repo_dir: Path, digest: str | None) -> bool:
    return (digest is not None and _DIGEST.fullmatch(digest) is not None
            and _revision_exists(repo_dir, digest) and _blob_exists(root, digest))


def _subdirs(path: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as entries:
            return [e for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:  # absent, or not readable: nothing cached there
        return []


def _repositories(top: Path):
    """(name, directory) of every repository under `top`, nested names included.

    A directory holding `_manifests` is a repository; it may also hold
    further repositories (`a/b` and `a/b/c`). Entries starting with `_` are
    distribution's own (`_layers`, `_uploads`), never name components.
    """
    stack = [("", top)]
    while stack:
        name, directory = stack.pop()
        children = _subdirs(directory)
        if name and any(e.name == "_manifests" for e in children):
            yield name, directory
        for entry in children:
            if not entry.name.startswith("_"):
                stack.append((f"{name}/{entry.name}" if name else entry.name, Path(entry.path)))


def cached_tags(storage_dir) -> list[CachedTag]:
    """Every tag the registry storing into `storage_dir` can serve, sorted."""
    root = Path(storage_dir)
    found = []
    for repository, repo_dir in _repositories(root / V2 / "repositories"):
        for tag in _subdirs(repo_dir / "_manifests" / "tags"):
            digest = _read_link(Path(tag.path) / "current" / "link")
            if _manifest_present(root, repo_dir, digest):
                found.append(CachedTag(repository, tag.name, digest))
    return sorted(found)


def has_image(storage_dir, ref: ImageRef) -> bool:
    """True when `ref` (by digest when it has one, else by tag) is served from the cache.

    Only the manifest (or index) named is checked; for a multi-platform index
    the per-platform manifests and layers are not followed.
    """
    root = Path(storage_dir)
    repo_dir = root / V2 / "repositories" / ref.repository
    if ref.digest:
        return _manifest_present(root, repo_dir, ref.digest)
    if not ref.tag:
        return False
    digest = _read_link(repo_dir / "_manifests" / "tags" / ref.tag / "current" / "link")
    return _manifest_present(root, repo_dir, digest)


def disk_usage(path) -> int:
    """Bytes allocated under `path`, counted as `du -s` does (not apparent sizes).

    Allocated blocks (st_blocks * 512), directories included, each hard-linked
    file once; `path` itself may be a symbolic link (`du -H`), links inside
    it are not followed. 0 when `path` does not exist.
    """
    try:
        top = os.stat(path)
    except OSError:
        return 0
    seen: set[tuple[int, int]] = set()
    total = top.st_blocks * 512
    if not os.path.isdir(path):
        return total
    stack = [os.fspath(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if st.st_nlink > 1 and not entry.is_dir(follow_symlinks=False):
                        if (st.st_dev, st.st_ino) in seen:
                            continue
                        seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


def blob_data(storage_dir, digest: str) -> Path:
    hex_ = digest.split(":", 1)[1]
    return Path(storage_dir) / V2 / "blobs" / "sha256" / hex_[:2] / hex_ / "data"


def _layer_link(storage_dir, repository: str, digest: str) -> Path:
    return Path(storage_dir) / V2 / "repositories" / repository / "_layers" / "sha256" / \
        digest.split(":", 1)[1] / "link"


def blob_linked(storage_dir, repository: str, digest: str) -> bool:
    """True when the registry serves the blob to this repository from its own disk."""
    return _layer_link(storage_dir, repository, digest).is_file() and blob_data(storage_dir, digest).is_file()


def link_blob(storage_dir, repository: str, digest: str) -> None:
    """Let `repository` serve a blob the store holds for another repository."""
    atomic_write(_layer_link(storage_dir, repository, digest), digest)


def uploads_size(storage_dir, repository: str) -> int:
    """Bytes in the repository's unfinished uploads: grows while the registry stores a blob."""
    uploads = Path(storage_dir) / V2 / "repositories" / repository / "_uploads"
    total = 0
    for data in uploads.glob("*/data"):
        try:
            total += data.stat().st_size
        except OSError:
            pass  # committed or purged meanwhile
    return total
