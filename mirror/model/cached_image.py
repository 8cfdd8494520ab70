"""Whether a registry's storage holds an image a pull can be served from, on any backend (pure).

The rule is written once, over `StoredFiles`: two questions on the paths of
distribution's storage layout (mirror.model.registry_layout, relative to its
`docker/registry/v2`), which the filesystem tree (mirror.host.storage) and
the object stores (s3 bucket, azure container: mirror.net.object_store)
answer alike. `read_link` and `manifest_present` are their readers' too.

An image is cached when what `docker pull` asks the mirror for is there:

- the tag's current link (unless the reference names a digest), the
  repository's revision link to the manifest and the manifest's blob
  (distribution resolves a manifest through the revision link, so content
  deleted through the API, its blob still waiting for garbage-collect, is
  not cached);
- for an image manifest, its config and every layer: each blob's data and
  the repository's link to it (a proxy serves a blob to a repository only
  through that link; a manifest fetched alone, `docker manifest inspect`,
  leaves the layers upstream);
- for an index (multi-platform), at least one of its platforms cached as
  above: a pull-through mirror holds only the platforms its clients pulled
  (attestation manifests, platform unknown/unknown, are not platforms).

A manifest that cannot be read as one (damaged, or not JSON) is not cached.
Digests are validated before they become paths (mirror.model.registry_layout
builds every path, and refuses a malformed digest).
"""

from __future__ import annotations

from typing import Protocol

from ..errors import InvalidDigest, InvalidManifest
from . import manifests, registry_layout as layout
from .digests import is_digest

# Layers a registry never stores (Windows base layers): their descriptors name URLs.
UNSTORED = ("foreign", "nondistributable")


class StoredFiles(Protocol):
    """One registry's storage, by paths relative to `docker/registry/v2`."""

    def read(self, path: str, limit: int) -> bytes | None:
        """At most `limit` bytes of the file, None when there is none."""

    def exists(self, path: str) -> bool:
        """Whether the file is there."""


def read_link(files: StoredFiles, path: str) -> str | None:
    """The digest a link file holds, or None when absent or malformed."""
    body = files.read(path, 200)
    text = (body or b"").decode("ascii", "replace").strip()
    return text if is_digest(text) else None


def manifest_present(files: StoredFiles, repository: str, digest: str | None) -> bool:
    """The repository links the manifest and its blob is there (what a manifest GET needs)."""
    return is_digest(digest) and files.exists(layout.revision_link(repository, digest)) \
        and files.exists(layout.blob_data(digest))


def _layers(manifest: dict) -> list[str]:
    """The digests of the blobs a pull of this image manifest fetches."""
    if manifest.get("schemaVersion") == 1:   # Docker schema 1: fsLayers, no config blob
        found = manifest.get("fsLayers", [])
        if not isinstance(found, list) or not all(isinstance(d, dict) for d in found):
            raise InvalidManifest("manifest: 'fsLayers' is not a list of objects")
        blobs = [d.get("blobSum") for d in found]
        if not all(is_digest(b) for b in blobs):
            raise InvalidDigest("manifest: a blobSum in 'fsLayers' is not a digest")
        return blobs
    return [d["digest"] for d in manifests.blobs_of(manifest)
            if not any(word in str(d.get("mediaType", "")) for word in UNSTORED)]


def _image_cached(files: StoredFiles, repository: str, digest: str | None, nested: bool) -> bool:
    if not manifest_present(files, repository, digest):
        return False
    try:
        body = files.read(layout.blob_data(digest), manifests.MAX_MANIFEST)
        manifest = manifests.parse(body or b"", f"manifest {digest}")
        if "manifests" in manifest:
            # An index inside an index is no image a client pulls: not followed further.
            return not nested and any(
                _image_cached(files, repository, child["digest"], True)
                for child in manifests.select_platforms(manifest, None))
        return all(files.exists(layout.layer_link(repository, blob))
                   and files.exists(layout.blob_data(blob))
                   for blob in dict.fromkeys(_layers(manifest)))
    except (InvalidManifest, InvalidDigest):
        return False


def image_cached(files: StoredFiles, repository: str, tag: str | None, digest: str | None) -> bool:
    """True when a pull of repository@digest (when given, else repository:tag) is served
    from `files` alone; see the module's rule."""
    if digest is None:
        if not tag:
            return False
        digest = read_link(files, layout.tag_link(repository, tag))
    return _image_cached(files, repository, digest, False)
