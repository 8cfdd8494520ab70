"""`--archive` and `restore`: the warm images as files, and back into a mirror.

One archive per image, `images/archives/<safe name>.tar`, with
`<safe name>.tar.sha256` beside it (sha256sum format). It is built from the
mirror over the registry API, byte for byte: the original manifest(s), the
config and the layer blobs as the registry stores them (gzip). Nothing is
decompressed or recompressed, so writing an archive costs one sequential
read and write, and the digests survive the round trip.

The archive is a plain (uncompressed) tar that holds two views of the same
blobs, as `docker save` of Docker 25 and later writes it:

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

`restore` pushes an archive into the mirror of its registry. A pull-through
mirror refuses pushes, so a short-lived maintenance registry (plain mode,
loopback only, same storage, same registry image) takes them, and the
pull-through mirror then serves the image, also with its upstream down.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import socket
import tarfile
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from docker.types import Mount

from . import images, install, ports, probes, registry, registry_image, render, warm
from . import layout as L
from .errors import DockerError, MirrorError
from .fsutil import atomic_write
from .regapi import INDEX_TYPES, Manifest, RegistryAPI
from .settings import Settings, Upstream

FORMAT = "docker-mirror-archive"
FORMAT_VERSION = 1
META = "docker-mirror.json"
SUFFIX = ".tar"
CHECKSUM_SUFFIX = ".sha256"
HASH_LENGTH = 12            # hex digits of sha256(reference) in a file name: 48 bits
MAX_READABLE = 150          # characters of the readable part of a file name
CHUNK = 4 << 20
STALE_TEMP_SECONDS = 24 * 3600
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_ARCHIVE_NAME = re.compile(rf"^[A-Za-z0-9._-]+-[0-9a-f]{{{HASH_LENGTH}}}\{SUFFIX}$")
_CHECKSUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


class ArchiveError(MirrorError):
    pass


class MaintenanceError(DockerError):
    pass


# ----------------------------------------------------------------- names (pure)

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
    algorithm, hexdigest = digest.split(":", 1)
    return f"blobs/{algorithm}/{hexdigest}"


# ----------------------------------------------------------------- writing

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
        return warm.blobs_of(self.manifest.json)


def _platform_name(platform: dict) -> str:
    return "/".join(p for p in (platform.get("os"), platform.get("architecture"), platform.get("variant")) if p)


def _platform_of(api: RegistryAPI, repository: str, manifest: Manifest) -> dict:
    config = manifest.json.get("config", {})
    body = io.BytesIO()
    api.fetch_blob(repository, config["digest"], sink=body.write)
    image_config = json.loads(body.getvalue())
    return {k: image_config[k] for k in ("os", "architecture", "variant") if image_config.get(k)}


def collect(api: RegistryAPI, ref: images.ImageRef, platforms: set[str] | None) -> tuple[Manifest, list[ImageManifest]]:
    """The top manifest of `ref` and the image manifests of the chosen platforms."""
    top = api.get_manifest(ref.repository, ref.reference)
    if not top.is_index:
        return top, [ImageManifest(top, _platform_of(api, ref.repository, top))]
    chosen = warm.select_platforms(top.json, platforms)
    if not chosen:
        raise ArchiveError(f"no manifest for platform(s) {', '.join(sorted(platforms or []))}")
    return top, [ImageManifest(api.get_manifest(ref.repository, child["digest"]), child.get("platform", {}))
                 for child in chosen]


def _index_complete(top: Manifest, chosen: list[ImageManifest]) -> bool:
    have = {m.manifest.digest for m in chosen}
    return all(child["digest"] in have for child in top.json.get("manifests", []))


def metadata(ref: images.ImageRef, top: Manifest, chosen: list[ImageManifest], platforms: set[str] | None) -> dict:
    return {
        "format": FORMAT, "version": FORMAT_VERSION,
        "reference": str(ref),
        "platforms": sorted(platforms) if platforms is not None else "all",
        "top": {"digest": top.digest, "mediaType": top.media_type, "size": len(top.body)},
        "complete": not top.is_index or _index_complete(top, chosen),
        "manifests": [{"digest": m.manifest.digest, "mediaType": m.manifest.media_type,
                       "size": len(m.manifest.body), "platform": m.platform} for m in chosen],
    }


def _load_view(ref: images.ImageRef, chosen: list[ImageManifest], host: str) -> list[dict]:
    """manifest.json: the one image `docker load` should tag (the host's, if archived)."""
    image = next((m for m in chosen if _platform_name(m.platform) == host
                  or _platform_name(m.platform).startswith(host + "/")), chosen[0])
    body = image.manifest.json
    return [{"Config": blob_path(body["config"]["digest"]),
             "RepoTags": [f"{ref.name}:{ref.tag}"] if ref.tag else [],
             "Layers": [blob_path(layer["digest"]) for layer in body.get("layers", [])]}]


def _oci_index(ref: images.ImageRef, top: Manifest) -> dict:
    annotations = {"io.containerd.image.name": str(ref)}
    if ref.tag:
        annotations["org.opencontainers.image.ref.name"] = ref.tag
    return {"schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": top.media_type, "digest": top.digest, "size": len(top.body),
                           "annotations": annotations}]}


def write_archive(api: RegistryAPI, ref: images.ImageRef, top: Manifest, chosen: list[ImageManifest],
                  platforms: set[str] | None, path: Path) -> tuple[int, str]:
    """Stream the archive into `path` through a temp file; returns (size, sha256 hex)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = metadata(ref, top, chosen, platforms)
    manifests = {top.digest: top.body, **{m.manifest.digest: m.manifest.body for m in chosen}}
    blobs = {d["digest"]: d for m in chosen for d in m.blobs}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb", buffering=CHUNK) as out:
            tar = TarWriter(out)
            tar.add(META, json.dumps(meta, indent=2).encode())
            tar.add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
            tar.directory("blobs/")
            tar.directory("blobs/sha256/")
            for digest, body in manifests.items():
                tar.add(blob_path(digest), body)
            for digest, descriptor in blobs.items():
                tar.begin(blob_path(digest), descriptor["size"])
                api.fetch_blob(ref.repository, digest, sink=tar.write)
                tar.end()
            tar.add("index.json", json.dumps(_oci_index(ref, top)).encode())
            tar.add("manifest.json", json.dumps(_load_view(ref, chosen, warm.host_platform())).encode())
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
            first = tar.next()
            if first is None or first.name != META or not first.isfile():
                return None
            return json.loads(tar.extractfile(first).read())
    except (OSError, tarfile.TarError, ValueError):
        return None


def _up_to_date(path: Path, top: Manifest, chosen: list[ImageManifest], platforms: set[str] | None) -> bool:
    if not checksum_path(path).exists():
        return False
    meta = read_metadata(path)
    return bool(meta) and meta.get("top", {}).get("digest") == top.digest \
        and [m["digest"] for m in meta.get("manifests", [])] == [m.manifest.digest for m in chosen] \
        and meta.get("platforms") == (sorted(platforms) if platforms is not None else "all")


def _mirror_api(settings: Settings, upstream: Upstream) -> RegistryAPI:
    return RegistryAPI(L.mirror_url(settings, upstream), verify=settings.tls_certificate or True)


def prune_archives(layout: L.Layout, keep: set[str], log=print) -> list[str]:
    """Remove archives (and their .sha256) of images no longer listed; returns their names."""
    removed = []
    if not layout.archives_dir.is_dir():
        return removed
    now = time.time()
    for path in sorted(layout.archives_dir.iterdir()):
        if _ARCHIVE_NAME.match(path.name) and path.name not in keep:
            path.unlink(missing_ok=True)
            checksum_path(path).unlink(missing_ok=True)
            removed.append(path.name)
            log(f"pruned {path.name}")
        elif path.name.endswith(SUFFIX + CHECKSUM_SUFFIX) and not path.with_suffix("").exists() \
                and _ARCHIVE_NAME.match(path.name[:-len(CHECKSUM_SUFFIX)]):
            path.unlink(missing_ok=True)  # the checksum of an archive already gone
        elif path.name.startswith(".") and path.name.endswith(".tmp") and _ARCHIVE_NAME.match(
                path.name[1:].rsplit(SUFFIX + ".", 1)[0] + SUFFIX) and now - path.stat().st_mtime > STALE_TEMP_SECONDS:
            path.unlink(missing_ok=True)  # left by a run that was killed mid-write
    return removed


def archive_images(settings: Settings, client=None, log: Callable[[str], None] = print, prune: bool = False,
                   extra: list[tuple[str, str]] = (), platform: str | None = None) -> list[str]:
    """Archive every warm image from the mirror; returns what failed.

    `platform` (os/arch[/variant]): which platform of a multi-platform image
    to archive; default the host's, or all with PULL_ALL_PLATFORMS.
    `client` (optional) only sharpens the message when a mirror is down.
    """
    layout = L.Layout.of(settings)
    wanted, errors = warm.wanted_images(settings, list(extra))
    for error in errors:
        log(f"skipped: {error}")
    platforms = {platform} if platform else None if settings.pull_all_platforms else {warm.host_platform()}
    failures = list(errors)
    answering: dict[str, bool] = {}
    for target in wanted:
        reference, upstream = str(target.ref), target.upstream
        path = layout.archives_dir / archive_name(reference)
        if upstream.key not in answering:
            answering[upstream.key] = registry.wait_until_answering(
                probes.probe_host(settings.bind_address), upstream.port, timeout=2,
                tls=bool(settings.tls_certificate))
        if not answering[upstream.key]:
            log(f"{reference}: NOT archived: {_down(settings, upstream, client)}")
            failures.append(reference)
            continue
        api = _mirror_api(settings, upstream)
        start = time.monotonic()
        try:
            top, chosen = collect(api, target.ref, platforms)
            if _up_to_date(path, top, chosen, platforms):
                log(f"{reference}: archive unchanged ({path.name})")
                continue
            size, _ = write_archive(api, target.ref, top, chosen, platforms, path)
        except (MirrorError, OSError) as err:
            log(f"{reference}: NOT archived: {err}")
            failures.append(reference)
            continue
        seconds = time.monotonic() - start
        log(f"{reference}: archived {warm.human(size)} in {seconds:.1f} s "
            f"({warm.human(size / max(seconds, 1e-6))}/s) to {path}")
    if prune:
        keep = {archive_name(str(t.ref)) for t in wanted}
        prune_archives(layout, keep, log=log)
    return failures


def _down(settings: Settings, upstream: Upstream, client) -> str:
    where = probes.host_port(probes.probe_host(settings.bind_address), upstream.port)
    state = ""
    if client is not None:
        try:
            state = f"; container {L.container_name(settings, upstream)} is " \
                    f"{client.containers.get(L.container_name(settings, upstream)).status}"
        except Exception:  # noqa: BLE001 -- only decorating the message
            state = f"; no container {L.container_name(settings, upstream)}"
    return f"the {upstream.registry} mirror does not answer on {where}{state}: run 'make docker-mirror'"


# ----------------------------------------------------------------- reading

def verify_checksum(path: Path) -> str:
    """Check `path` against its .sha256; returns the hex digest or raises ArchiveError."""
    try:
        line = checksum_path(path).read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError, UnicodeDecodeError):
        raise ArchiveError(f"no readable {checksum_path(path).name} beside it") from None
    match = _CHECKSUM_LINE.match(line)
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
            members = {m.name: m for m in tar.getmembers()}
            if META not in members:
                raise ArchiveError(f"no {META}: not an archive written by 'pull --archive'")
            meta = json.loads(tar.extractfile(members[META]).read())
    except (OSError, tarfile.TarError) as err:
        raise ArchiveError(f"cannot read it as a tar ({err})") from None
    except ValueError as err:
        raise ArchiveError(f"{META} is not JSON ({err})") from None
    if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise ArchiveError(f"{META}: unknown format {meta.get('format')!r} version {meta.get('version')!r}")
    try:
        images.parse(meta["reference"])
    except (KeyError, images.InvalidReference) as err:
        raise ArchiveError(f"{META}: bad reference ({err})") from None
    return Archive(path, meta, members)


# ----------------------------------------------------------------- restoring

def _free_port_pair() -> int:
    """A loopback port that is free, and whose debug port is free too.

    distribution exits (log.Fatalf) when its debug listener cannot bind.
    """
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if ports.port_is_free("127.0.0.1", render.debug_port(port)):
            return port
    raise MaintenanceError("no free loopback port pair for the maintenance registry")


def maintenance_name(settings: Settings, upstream: Upstream) -> str:
    return f"{L.container_name(settings, upstream)}-maintenance"


@contextmanager
def maintenance_registry(settings: Settings, client, upstream: Upstream, log=print):
    """A plain registry on the mirror's storage, on loopback, for the time of the block.

    Same registry image and http secret as the mirror; no htpasswd and no TLS,
    as it listens on 127.0.0.1 only, on a free port, and lives seconds.
    """
    layout = L.Layout.of(settings)
    image = registry_image.ensure_registry_image(client, settings.registry_image, log=log)
    port = _free_port_pair()
    local = dataclasses.replace(settings, bind_address="127.0.0.1", htpasswd_path=None,
                                tls_certificate=None, tls_key=None)
    text = render.registry_config(local, dataclasses.replace(upstream, port=port), major=image.major,
                                  mode=L.PLAIN, http_secret=install.http_secret(layout))
    config_path = layout.config_dir / f".maintenance-{upstream.key}.yml"
    atomic_write(config_path, text, mode=0o600)  # holds the http secret
    mounts = [Mount(image.config_path, str(config_path), type="bind", read_only=True)]
    if settings.storage.backend == "filesystem":
        layout.storage_dir(upstream).mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(render.CONTAINER_STORAGE, str(layout.storage_dir(upstream)), type="bind"))
    name = maintenance_name(settings, upstream)
    container = None
    try:
        try:
            client.containers.get(name).remove(force=True, v=True)  # left by a run that was killed
        except Exception:  # noqa: BLE001 -- docker.errors.NotFound: nothing to clean
            pass
        try:
            # No LABEL_UPSTREAM: remove_unconfigured() must not take it for a mirror.
            container = client.containers.run(image.image_id, name=name, detach=True, network_mode="host",
                                              labels={"docker-mirror.maintenance": upstream.key},
                                              mounts=mounts)
        except Exception as err:  # docker.errors.DockerException
            raise MaintenanceError(f"cannot start the maintenance registry {name}: {err}") from None
        if not registry.wait_until_answering("127.0.0.1", port, container):
            tail = container.logs(tail=15).decode(errors="replace").strip()
            raise MaintenanceError(f"the maintenance registry {name} did not answer on 127.0.0.1:{port}:\n{tail}")
        log(f"{upstream.registry}: maintenance registry {name} on 127.0.0.1:{port}")
        yield RegistryAPI(f"http://127.0.0.1:{port}")
    finally:
        if container is not None:
            container.remove(force=True, v=True)
        config_path.unlink(missing_ok=True)


def link_partial_index(storage_dir: Path, repository: str, tag: str | None, manifest: Manifest) -> None:
    """Store an index whose other platforms are absent, as a proxy caches one.

    distribution 2.8 accepts a pushed index only when every child is there
    (3.x can be told otherwise); a pull-through mirror, though, holds exactly
    this: the index and the children it was asked for. Writing the index blob
    and its links in the storage layout (v2, unchanged since 2.0) gives the
    proxy the same state, so the tag keeps the upstream's digest.
    """
    # No path traversal: the repository and tag come from a parsed reference,
    # whose components start with a letter, digit or '_', never '.' or '/'.
    algorithm, hexdigest = manifest.digest.split(":", 1)
    v2 = storage_dir / "docker/registry/v2"
    data = v2 / "blobs" / algorithm / hexdigest[:2] / hexdigest / "data"
    if not data.exists():
        atomic_write(data, manifest.body)
    manifests = v2 / "repositories" / repository / "_manifests"
    atomic_write(manifests / "revisions" / algorithm / hexdigest / "link", manifest.digest)
    if tag:
        atomic_write(manifests / "tags" / tag / "index" / algorithm / hexdigest / "link", manifest.digest)
        atomic_write(manifests / "tags" / tag / "current" / "link", manifest.digest)


def push_archive(api: RegistryAPI, archive: Archive, storage_dir: Path | None, log=print) -> str:
    """Push blobs, manifests and the tag; returns what the tag points at."""
    ref, meta = archive.ref, archive.meta
    repository = ref.repository
    tag_or_digest = ref.tag or ref.digest
    chosen = []
    for entry in meta["manifests"]:
        manifest = Manifest(entry["digest"], entry["mediaType"], archive.read(entry["digest"]))
        chosen.append(manifest)
        for descriptor in warm.blobs_of(manifest.json):
            digest = descriptor["digest"]
            if api.blob_exists(repository, digest):
                continue
            with archive.section(digest) as body:
                api.upload_blob(repository, digest, body)
    top_entry = meta["top"]
    top = Manifest(top_entry["digest"], top_entry["mediaType"], archive.read(top_entry["digest"]))
    is_index = top.media_type in INDEX_TYPES or "manifests" in top.json
    for manifest in chosen:
        if manifest.digest != top.digest:
            api.put_manifest(repository, manifest.digest, manifest)
    if not is_index or meta.get("complete"):
        api.put_manifest(repository, tag_or_digest, top)
        return top.digest
    if storage_dir is not None:
        link_partial_index(storage_dir, repository, ref.tag, top)
        return top.digest
    # Object storage: no layout to write into. The tag then names the platform
    # image, whose digest differs from the upstream's index digest.
    api.put_manifest(repository, tag_or_digest, chosen[0])
    log(f"{ref}: only some platforms archived and the storage is not a file system: "
        f"the tag now names the {chosen[0].digest[:19]} platform image, not the index {top.digest[:19]}")
    return chosen[0].digest


def _archive_paths(layout: L.Layout, paths) -> list[Path]:
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


def restore(settings: Settings, client, paths=None, log: Callable[[str], None] = print) -> list[str]:
    """Restore archives into the mirror; returns the archives that failed.

    Each archive's .sha256 is checked first; a bad archive is reported and
    skipped, the others are still restored.
    """
    layout = L.Layout.of(settings)
    by_registry = {u.registry: u for u in settings.upstreams}
    failures: list[str] = []
    queued: dict[str, list[Archive]] = {}
    archive_files = _archive_paths(layout, paths)
    if not archive_files:
        log(f"no archives to restore in {layout.archives_dir}")
    for path in archive_files:
        try:
            verify_checksum(path)
            archive = open_archive(path)
            upstream = by_registry.get(archive.ref.registry)
            if upstream is None:
                raise ArchiveError(f"{archive.ref}: registry {archive.ref.registry} is not mirrored here "
                                   f"(mirrored: {', '.join(by_registry)})")
        except ArchiveError as err:
            log(f"{path.name}: NOT restored: {err}")
            failures.append(str(path))
            continue
        queued.setdefault(upstream.key, []).append(archive)
    for key, archives in queued.items():
        upstream = settings.upstream(key)
        storage_dir = layout.storage_dir(upstream) if settings.storage.backend == "filesystem" else None
        pending = list(archives)
        try:
            with maintenance_registry(settings, client, upstream, log=log) as api:
                while pending:
                    archive = pending.pop(0)
                    start = time.monotonic()
                    try:
                        digest = push_archive(api, archive, storage_dir, log=log)
                    except (MirrorError, OSError, KeyError, TypeError, ValueError) as err:
                        # KeyError and the like: a docker-mirror.json of the right
                        # format with a field missing or mistyped; this archive only.
                        log(f"{archive.path.name}: NOT restored: {err}")
                        failures.append(str(archive.path))
                        continue
                    log(f"{archive.ref}: restored {digest[:19]} from {archive.path.name} "
                        f"in {time.monotonic() - start:.1f} s")
        except MirrorError as err:
            # The maintenance registry itself failed: what it did not get to is not restored.
            log(f"{upstream.registry}: {len(pending)} archive(s) NOT restored: {err}")
            failures += [str(a.path) for a in pending]
    return failures
