"""distribution's storage layout: the one place its paths are built and read back (pure).

Every backend holds a registry's files by the same paths, relative to its
`docker/registry/v2` (the filesystem tree, mirror.host.storage; the s3
bucket and the azure container, mirror.net.object_store), as distribution
builds them in its one paths.go (v2, unchanged since 2.0):

    repositories/<name>/_manifests/tags/<tag>/current/link
    repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link
    repositories/<name>/_manifests/revisions/sha256/<hex>/link
    repositories/<name>/_layers/sha256/<hex>/link
    repositories/<name>/_uploads/<id>/...
    blobs/sha256/<hex[:2]>/<hex>/data

A link file holds a digest. Every digest is validated before it becomes a
path, here: one read from a link file, a key or a manifest ("../../x")
raises ValueError rather than name a file elsewhere. Repository names come
from parsed references, whose components never are '.', '..' or empty.
"""

from __future__ import annotations

from .digests import is_digest

V2 = "docker/registry/v2"   # under a filesystem store's root, or a bucket's prefix
REPOSITORIES = "repositories"
BLOBS = "blobs"
MANIFESTS = "_manifests"   # a directory holding one is a repository
UPLOADS = "_uploads"       # a repository's unfinished uploads, one directory each


def split(digest: str) -> tuple[str, str]:
    """(algorithm, hex) of a valid digest; ValueError for anything else."""
    if not is_digest(digest):
        raise ValueError(f"not a digest: {digest!r}")
    algorithm, hex_ = digest.split(":", 1)
    return algorithm, hex_


def repository(name: str) -> str:
    return f"{REPOSITORIES}/{name}"


def tags(name: str) -> str:
    """The directory of the repository's tags, one directory each."""
    return f"{repository(name)}/{MANIFESTS}/tags"


def tag_link(name: str, tag: str) -> str:
    return f"{tags(name)}/{tag}/current/link"


def tag_index(name: str, tag: str) -> str:
    """The directory of one link per digest the tag was set to."""
    return f"{tags(name)}/{tag}/index"


def tag_index_link(name: str, tag: str, digest: str) -> str:
    algorithm, hex_ = split(digest)
    return f"{tag_index(name, tag)}/{algorithm}/{hex_}/link"


def revisions(name: str) -> str:
    """The directory of the repository's manifest links (<algorithm>/<hex>/link)."""
    return f"{repository(name)}/{MANIFESTS}/revisions"


def revision_link(name: str, digest: str) -> str:
    algorithm, hex_ = split(digest)
    return f"{revisions(name)}/{algorithm}/{hex_}/link"


def layers(name: str) -> str:
    """The directory of the repository's blob links (<algorithm>/<hex>/link)."""
    return f"{repository(name)}/_layers"


def layer_link(name: str, digest: str) -> str:
    algorithm, hex_ = split(digest)
    return f"{layers(name)}/{algorithm}/{hex_}/link"


def uploads(name: str) -> str:
    return f"{repository(name)}/{UPLOADS}"


def blob_data(digest: str) -> str:
    algorithm, hex_ = split(digest)
    return f"{BLOBS}/{algorithm}/{hex_[:2]}/{hex_}/data"


# ---------------------------------------------------------------- paths read back (object keys)

def repository_of(path: str) -> tuple[str, list[str]] | None:
    """(name, the components after it) of a path under repositories/, None for another path.

    The name is every component before the first of distribution's own
    (`_manifests`, `_layers`, `_uploads`: a name component never starts with '_').
    """
    top, _, rest = path.partition("/")
    if top != REPOSITORIES:
        return None
    parts = rest.split("/")
    cut = next((i for i, p in enumerate(parts) if p.startswith("_")), None)
    if not cut:
        return None
    return "/".join(parts[:cut]), parts[cut:]


def link_of(rest: list[str]) -> tuple[str, str] | None:
    """(kind, name) of a repository's link file, from the components after its name (as
    `repository_of` gives them): ("revision" or "layer", its valid digest) or ("tag", the tag);
    None for any other file (a tag's index links: `tag_index_of`; uploads)."""
    if not rest or rest[-1] != "link":
        return None
    if rest[:2] == [MANIFESTS, "revisions"] and len(rest) == 5:
        digest = f"{rest[2]}:{rest[3]}"
        return ("revision", digest) if is_digest(digest) else None
    if rest[:2] == [MANIFESTS, "tags"] and len(rest) == 5 and rest[3] == "current":
        return "tag", rest[2]
    if rest[0] == "_layers" and len(rest) == 4:
        digest = f"{rest[1]}:{rest[2]}"
        return ("layer", digest) if is_digest(digest) else None
    return None


def tag_index_of(rest: list[str]) -> tuple[str, str] | None:
    """(tag, its valid digest) of one of a tag's index links (one per digest the tag was set
    to), from the components after the repository's name; None for any other file. The digest
    is the key's, as distribution's own tag store reads its index (by path)."""
    if len(rest) == 7 and rest[:2] == [MANIFESTS, "tags"] and rest[3] == "index" and rest[6] == "link":
        digest = f"{rest[4]}:{rest[5]}"
        return (rest[2], digest) if is_digest(digest) else None
    return None


def blob_of(path: str) -> str | None:
    """The valid digest whose data `path` is (blobs/<algorithm>/<xx>/<hex>/data), else None."""
    parts = path.split("/")
    if len(parts) == 5 and parts[0] == BLOBS and parts[4] == "data":
        digest = f"{parts[1]}:{parts[3]}"
        return digest if is_digest(digest) else None
    return None
