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

Two writes: `link_blob`, the one distribution itself makes when a
repository gains a blob the store already holds (a cross-repository mount):
    docker/registry/v2/repositories/<name>/_layers/sha256/<hex>/link
and `link_partial_index`, which stores an index as a proxy caches one.

Every path in the tree is built by `StorageTree`, from
mirror.model.registry_layout (the layout's one place, for the object stores
too, as distribution builds it in one paths.go), which validates every
digest: a malformed one never becomes a path. Link files are read through
`TreeFiles` by mirror.model.cached_image's `read_link` and
`manifest_present`, as the object stores' are.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..model import cached_image, registry_layout as layout
from ..model.cached_image import manifest_present, read_link
from ..model.digests import is_digest
from ..model.images import ImageRef
from ..model.manifests import MAX_MANIFEST, Manifest
from .files import atomic_write

V2 = Path(layout.V2)
SCHEDULER_STATE = "scheduler-state.json"   # the proxy's expiry state, at the storage root


class StorageTree:
    """Every path of one registry's storage directory (paths only, no I/O): distribution's
    layout (mirror.model.registry_layout, which validates every digest) under its root."""

    def __init__(self, storage_dir):
        self.root = Path(storage_dir)
        self.v2 = self.root / V2

    @property
    def scheduler_state(self) -> Path:
        return self.root / SCHEDULER_STATE

    @property
    def repositories(self) -> Path:
        return self.v2 / layout.REPOSITORIES

    def repository(self, name: str) -> Path:
        # Names come from parsed references, whose components never hold '.' or '/' alone.
        return self.v2 / layout.repository(name)

    def blob_data(self, digest: str) -> Path:
        return self.v2 / layout.blob_data(digest)

    def layer_link(self, repository: str, digest: str) -> Path:
        return self.v2 / layout.layer_link(repository, digest)

    def layers(self, repository: str) -> Path:
        return self.v2 / layout.layers(repository)

    def revision_link(self, repository: str, digest: str) -> Path:
        return self.v2 / layout.revision_link(repository, digest)

    def revisions(self, repository: str) -> Path:
        return self.v2 / layout.revisions(repository)

    def tags(self, repository: str) -> Path:
        return self.v2 / layout.tags(repository)

    def tag_link(self, repository: str, tag: str) -> Path:
        return self.v2 / layout.tag_link(repository, tag)

    def tag_index(self, repository: str, tag: str) -> Path:
        return self.v2 / layout.tag_index(repository, tag)

    def tag_index_link(self, repository: str, tag: str, digest: str) -> Path:
        return self.v2 / layout.tag_index_link(repository, tag, digest)

    def uploads(self, repository: str) -> Path:
        return self.v2 / layout.uploads(repository)


@dataclass(frozen=True, order=True)
class CachedTag:
    repository: str
    tag: str
    digest: str


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
        if name and any(e.name == layout.MANIFESTS for e in children):
            yield name, directory
        for entry in children:
            if not entry.name.startswith("_"):
                stack.append((f"{name}/{entry.name}" if name else entry.name, Path(entry.path)))


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


def cached_tags(storage_dir) -> list[CachedTag]:
    """Every tag the registry storing into `storage_dir` can serve, sorted."""
    tree, files = StorageTree(storage_dir), TreeFiles(storage_dir)
    found = []
    for repository, _ in _repositories(tree.repositories):
        for tag in _subdirs(tree.tags(repository)):
            digest = read_link(files, layout.tag_link(repository, tag.name))
            if manifest_present(files, repository, digest):
                found.append(CachedTag(repository, tag.name, digest))
    return sorted(found)


class TreeFiles:
    """The storage tree as mirror.model.cached_image reads it (paths relative to V2)."""

    def __init__(self, storage_dir):
        self.v2 = StorageTree(storage_dir).v2

    def read(self, path: str, limit: int) -> bytes | None:
        try:
            with open(self.v2 / path, "rb") as f:
                return f.read(limit)
        except OSError:   # absent, or not readable: not served from the cache either
            return None

    def exists(self, path: str) -> bool:
        return (self.v2 / path).is_file()


def has_image(storage_dir, ref: ImageRef) -> bool:
    """True when a pull of `ref` (by digest when it has one, else by tag) is served from the
    cache alone: its manifest, and its layers (mirror.model.cached_image has the rule)."""
    return cached_image.image_cached(TreeFiles(storage_dir), ref.repository, ref.tag, ref.digest)


def blob_data(storage_dir, digest: str) -> Path:
    return StorageTree(storage_dir).blob_data(digest)


def blob_linked(storage_dir, repository: str, digest: str) -> bool:
    """True when the registry serves the blob to this repository from its own disk."""
    tree = StorageTree(storage_dir)
    return tree.layer_link(repository, digest).is_file() and tree.blob_data(digest).is_file()


def link_blob(storage_dir, repository: str, digest: str) -> None:
    """Let `repository` serve a blob the store holds for another repository."""
    atomic_write(StorageTree(storage_dir).layer_link(repository, digest), digest)


def uploads_size(storage_dir, repository: str) -> int:
    """Bytes in the repository's unfinished uploads: grows while the registry stores a blob."""
    total = 0
    for data in StorageTree(storage_dir).uploads(repository).glob("*/data"):
        try:
            total += data.stat().st_size
        except OSError:
            pass  # committed or purged meanwhile
    return total


def link_partial_index(storage_dir, repository: str, tag: str | None, manifest: Manifest) -> None:
    """Store an index whose other platforms are absent, as a proxy caches one.

    distribution 2.8 accepts a pushed index only when every child is there
    (3.x can be told otherwise); a pull-through mirror, though, holds exactly
    this: the index and the children it was asked for. Writing the index blob
    and its links in the storage layout (v2, unchanged since 2.0) gives the
    proxy the same state, so the tag keeps the upstream's digest.
    """
    tree = StorageTree(storage_dir)
    data = tree.blob_data(manifest.digest)
    if not data.exists():
        atomic_write(data, manifest.body)
    atomic_write(tree.revision_link(repository, manifest.digest), manifest.digest)
    if tag:
        atomic_write(tree.tag_index_link(repository, tag, manifest.digest), manifest.digest)
        atomic_write(tree.tag_link(repository, tag), manifest.digest)


# ---------------------------------------------------------------- the cache's lifecycle
#
# What the collection needs: every repository and its manifests, the blobs
# they name, and the one removal distribution's garbage-collect leaves to its
# caller (a manifest's links). garbage-collect then deletes the blobs no
# remaining manifest references, in every repository (mark and sweep).

def repositories(storage_dir) -> list[str]:
    """Every repository name in the tree, sorted."""
    return sorted(name for name, _ in _repositories(StorageTree(storage_dir).repositories))


def revisions(storage_dir, repository: str) -> list[str]:
    """The digests of the manifests (and indexes) the repository holds, whose blob is there."""
    files = TreeFiles(storage_dir)
    found = []
    for algorithm in _subdirs(StorageTree(storage_dir).revisions(repository)):
        for entry in _subdirs(algorithm.path):
            digest = f"{algorithm.name}:{entry.name}"
            if manifest_present(files, repository, digest):
                found.append(digest)
    return sorted(found)


def tags(storage_dir, repository: str) -> dict[str, str]:
    """{tag: digest} of the repository's tags whose link is readable."""
    files = TreeFiles(storage_dir)
    found = {}
    for tag in _subdirs(StorageTree(storage_dir).tags(repository)):
        digest = read_link(files, layout.tag_link(repository, tag.name))
        if digest:
            found[tag.name] = digest
    return found


def tag_history(storage_dir, repository: str, tag: str) -> list[str]:
    """Every digest the tag pointed at while cached (distribution keeps one index link per
    digest a tag was set to, `_manifests/tags/<tag>/index/`), the current one included."""
    files = TreeFiles(storage_dir)
    found = []
    for algorithm in _subdirs(StorageTree(storage_dir).tag_index(repository, tag)):
        for entry in _subdirs(algorithm.path):
            digest = f"{algorithm.name}:{entry.name}"
            if is_digest(digest) \
                    and read_link(files, layout.tag_index_link(repository, tag, digest)) == digest:
                found.append(digest)
    return sorted(found)


def read_manifest(storage_dir, digest: str, limit: int = MAX_MANIFEST) -> bytes | None:
    """The stored bytes of a manifest blob (at most `limit`: manifests are small), or None."""
    try:
        with open(StorageTree(storage_dir).blob_data(digest), "rb") as f:
            return f.read(limit)
    except OSError:
        return None


def blob_size(storage_dir, digest: str) -> int:
    """Bytes of the stored blob, 0 when absent."""
    try:
        return StorageTree(storage_dir).blob_data(digest).stat().st_size
    except OSError:
        return 0


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def remove_manifest(storage_dir, repository: str, digest: str) -> list[str]:
    """Unlink one manifest from the repository, as a DELETE by digest does; returns the tags removed.

    The revision link goes, and so do the tags pointing at it (and their
    index entries for it). Its blobs stay until garbage-collect finds them
    unreferenced. The registry must be stopped (or read-only) meanwhile.
    """
    tree = StorageTree(storage_dir)
    _remove_tree(tree.revision_link(repository, digest).parent)
    removed = []
    for tag, current in tags(storage_dir, repository).items():
        if current == digest:
            _remove_tree(tree.tags(repository) / tag)
            removed.append(tag)
        else:
            _remove_tree(tree.tag_index_link(repository, tag, digest).parent)
    return removed


def purge_uploads(storage_dir) -> int:
    """Delete every repository's unfinished uploads (only with the registry stopped); bytes freed.

    A blob the registry gave up storing (its disk filled up, its upstream
    went away) leaves its partial upload behind, holding the room a
    collection is making; distribution's own purge runs only once a week.
    """
    freed = 0
    # Every `_uploads`, of repositories whose manifest never got stored too.
    for top, dirs, _ in os.walk(StorageTree(storage_dir).repositories):
        if layout.UPLOADS in dirs:
            uploads = Path(top) / layout.UPLOADS
            freed += disk_usage(uploads)
            _remove_tree(uploads)
        dirs[:] = [d for d in dirs if not d.startswith("_")]
    return freed


def tidy(storage_dir) -> int:
    """After a collection: drop layer links to blobs that are gone, and repositories left
    without a manifest; returns how many layer links went.

    distribution's sweep deletes blob data only; a dangling `_layers` link
    would make the registry look for a blob it no longer has.
    """
    tree = StorageTree(storage_dir)
    dropped = 0
    for repository in repositories(storage_dir):
        if not revisions(storage_dir, repository):
            _remove_tree(tree.repository(repository) / layout.MANIFESTS)
            _remove_tree(tree.layers(repository))
            continue
        for algorithm in _subdirs(tree.layers(repository)):
            for entry in _subdirs(algorithm.path):
                digest = f"{algorithm.name}:{entry.name}"
                if is_digest(digest) and not tree.blob_data(digest).is_file():
                    _remove_tree(Path(entry.path))
                    dropped += 1
    return dropped


# ---------------------------------------------------------------- damage
#
# One bad entry fails one entry: a link file cut short, a link naming another
# digest, a link to a blob that is gone. distribution answers 500 for such an
# entry, and its garbage-collect stops at the first one; the readers here skip
# it, status names it, and the next collection removes it (`remove_damaged`).

@dataclass(frozen=True, order=True)
class DamagedLink:
    repository: str
    kind: str           # "tag", "revision" or "layer"
    name: str           # the tag, or the digest the link's directory names
    reason: str

    def describe(self) -> str:
        where = f"{self.repository}:{self.name}" if self.kind == "tag" else f"{self.repository}@{self.name}"
        return f"{where} ({self.kind} link): {self.reason}"


def _link_text(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(200).decode("ascii", "replace").strip()
    except OSError:
        return None


def _shown(text: str | None) -> str:
    return "unreadable" if text is None else f"holds {text[:40]!r}"


def damaged_links(storage_dir, repository: str) -> list[DamagedLink]:
    """The repository's link files that distribution could not follow."""
    tree = StorageTree(storage_dir)
    found = []
    for tag in _subdirs(tree.tags(repository)):
        path = tree.tag_link(repository, tag.name)
        if not path.exists():
            continue   # a tag directory without `current` is not served, and harms nothing
        text = _link_text(path)
        if not is_digest(text):
            found.append(DamagedLink(repository, "tag", tag.name, f"not a digest ({_shown(text)})"))
    for kind, top, link in (("revision", tree.revisions(repository), tree.revision_link),
                            ("layer", tree.layers(repository), tree.layer_link)):
        for algorithm in _subdirs(top):
            for entry in _subdirs(algorithm.path):
                digest = f"{algorithm.name}:{entry.name}"
                if not is_digest(digest):
                    continue
                path = link(repository, digest)
                if not path.exists():
                    continue
                text = _link_text(path)
                if text != digest:
                    found.append(DamagedLink(repository, kind, digest, f"does not name its digest "
                                                                       f"({_shown(text)})"))
                elif kind == "revision" and not tree.blob_data(digest).is_file():
                    found.append(DamagedLink(repository, kind, digest, "its manifest blob is gone"))
    return sorted(found)


def remove_damaged(storage_dir, link: DamagedLink) -> None:
    """Remove a damaged link (the registry stopped): the proxy fetches the entry again when asked."""
    tree = StorageTree(storage_dir)
    if link.kind == "tag":
        _remove_tree(tree.tags(link.repository) / link.name)
    elif link.kind == "revision":
        remove_manifest(storage_dir, link.repository, link.name)
    else:
        _remove_tree(tree.layer_link(link.repository, link.name).parent)
