"""The image archive format of `pull --archive` and `restore` (pure).

One archive per image, `images/archives/<safe name>.tar`, with
`<safe name>.tar.sha256` beside it (sha256sum format). The archive is a
plain (uncompressed) tar that holds two views of the same blobs, as
`docker save` of Docker 25 and later writes it:

    docker-mirror.json        what this tool needs to restore (first member)
    oci-layout, index.json    OCI image layout (loaded by Docker 25+ and containerd)
    blobs/sha256/<hex>        manifests, config and layers, exactly as served
    manifest.json             docker-save view: Config, RepoTags, Layers paths

`docker load` accepts it: Docker 20.10 (this host's engine) reads
manifest.json and decompresses gzip layers itself (tarexport's loadLayer
runs DecompressStream); the image ID it gets is the config digest, the same
as `docker pull` gives. The outer file is not gzipped: the layers already
are, and a second gzip over them gains nothing and would cost a full CPU
pass each way; a plain tar also lets restore read any member in place.

This module names archives and builds their members; TarWriter writes the
tar format to any file object. Reading and writing the files is
mirror.host.archives; the HTTP is the commands'.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArchiveError
from . import digests, images
from .manifests import OCI_INDEX, Manifest, blobs_of, platform_name

FORMAT = "docker-mirror-archive"
FORMAT_VERSION = 1
META = "docker-mirror.json"
SUFFIX = ".tar"
CHECKSUM_SUFFIX = ".sha256"
HASH_LENGTH = 12            # hex digits of sha256(reference) in a file name: 48 bits
MAX_READABLE = 150          # characters of the readable part of a file name
ARCHIVE_NAME = re.compile(rf"^[A-Za-z0-9._-]+-[0-9a-f]{{{HASH_LENGTH}}}\{SUFFIX}$")
CHECKSUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def archive_name(reference: str) -> str:
    """A file name for `reference`: readable, safe, and distinct per reference.

    Every character outside [A-Za-z0-9._-] becomes '_' (no '/' means no path
    traversal; a normalised reference starts with a letter or digit, so no
    hidden file either), the readable part is cut to a length any file system
    takes, and a hash of the whole normalised reference keeps two references
    that read alike (a/b_c and a_b/c, or two long ones) apart.
    """
    normalised = images.normalize(reference)
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", normalised)[:MAX_READABLE]
    digest = hashlib.sha256(normalised.encode()).hexdigest()[:HASH_LENGTH]
    return f"{readable}-{digest}{SUFFIX}"


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def checksum_line(hexdigest: str, name: str) -> str:
    return f"{hexdigest}  {name}\n"


def blob_path(digest: str) -> str:
    # Checked here, the one place a digest becomes a member name, on write and on read.
    algorithm, hexdigest = digests.require(digest, "archive member").split(":", 1)
    return f"blobs/{algorithm}/{hexdigest}"


class TarWriter:
    """A tar written strictly in sequence, so a blob can stream into it.

    tarfile.addfile() wants the whole member at hand; here the header comes
    from TarInfo (PAX format), the data is copied chunk by chunk as it
    arrives, and every byte written is hashed for the .sha256 file.
    """

    def __init__(self, out):
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0
        self.pending = 0

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.hash.update(data)
        self.size += len(data)

    def directory(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        self._write(info.tobuf(tarfile.PAX_FORMAT))

    def begin(self, name: str, size: int) -> None:
        info = tarfile.TarInfo(name)
        # mtime 0 and fixed modes: the same image always gives the same archive bytes.
        info.size, info.mode, info.mtime = size, 0o644, 0
        self._write(info.tobuf(tarfile.PAX_FORMAT))
        self.pending = size

    def write(self, chunk: bytes) -> None:
        if len(chunk) > self.pending:
            raise ArchiveError(f"more data than announced ({len(chunk)} > {self.pending} bytes left)")
        self.pending -= len(chunk)
        self._write(chunk)

    def end(self) -> None:
        if self.pending:
            raise ArchiveError(f"{self.pending} bytes short of the announced size")
        self._write(b"\0" * (-self.size % tarfile.BLOCKSIZE))

    def add(self, name: str, data: bytes) -> None:
        self.begin(name, len(data))
        self.write(data)
        self.end()

    def close(self) -> None:
        self._write(b"\0" * (2 * tarfile.BLOCKSIZE))
        self._write(b"\0" * (-self.size % tarfile.RECORDSIZE))


@dataclass(frozen=True)
class ImageManifest:
    manifest: Manifest
    platform: dict

    @property
    def blobs(self) -> list[dict]:
        return blobs_of(self.manifest.json)


def index_complete(top: Manifest, chosen: list[ImageManifest]) -> bool:
    have = {m.manifest.digest for m in chosen}
    return all(child["digest"] in have for child in top.json.get("manifests", []))


def metadata(ref: images.ImageRef, top: Manifest, chosen: list[ImageManifest], platforms: set[str] | None) -> dict:
    return {
        "format": FORMAT, "version": FORMAT_VERSION,
        "reference": str(ref),
        "platforms": sorted(platforms) if platforms is not None else "all",
        "top": {"digest": top.digest, "mediaType": top.media_type, "size": len(top.body)},
        "complete": not top.is_index or index_complete(top, chosen),
        "manifests": [{"digest": m.manifest.digest, "mediaType": m.manifest.media_type,
                       "size": len(m.manifest.body), "platform": m.platform} for m in chosen],
    }


def load_view(ref: images.ImageRef, chosen: list[ImageManifest], host: str) -> list[dict]:
    """manifest.json: the one image `docker load` should tag (the host's, if archived)."""
    image = next((m for m in chosen if platform_name(m.platform) == host
                  or platform_name(m.platform).startswith(host + "/")), chosen[0])
    body = image.manifest.json
    return [{"Config": blob_path(body["config"]["digest"]),
             "RepoTags": [f"{ref.name}:{ref.tag}"] if ref.tag else [],
             "Layers": [blob_path(layer["digest"]) for layer in body.get("layers", [])]}]


def oci_index(ref: images.ImageRef, top: Manifest) -> dict:
    annotations = {"io.containerd.image.name": str(ref)}
    if ref.tag:
        annotations["org.opencontainers.image.ref.name"] = ref.tag
    return {"schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": top.media_type, "digest": top.digest, "size": len(top.body),
                           "annotations": annotations}]}


def metadata_matches(meta: dict | None, top: Manifest, chosen: list[ImageManifest],
                     platforms: set[str] | None) -> bool:
    """True when an archive's metadata names exactly these manifests and platforms."""
    return bool(meta) and meta.get("top", {}).get("digest") == top.digest \
        and [m["digest"] for m in meta.get("manifests", [])] == [m.manifest.digest for m in chosen] \
        and meta.get("platforms") == (sorted(platforms) if platforms is not None else "all")
