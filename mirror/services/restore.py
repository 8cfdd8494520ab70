"""`restore` (`make docker-mirror-restore`): image archives back into the mirror.

Each archive's .sha256 is checked first. A pull-through mirror refuses
pushes, so a short-lived maintenance registry (plain mode, loopback only,
same storage, same registry image; engine.containers.maintenance_plan)
takes them, and the pull-through mirror then serves the image, also with
its upstream down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..model.settings import Settings
from ..engine import containers
from ..engine import storage_drivers
from ..engine.registry_image import ensure_registry_image
from ..errors import ArchiveError, MirrorError
from ..host import archives as host_archives
from ..host import ports, storage
from ..host import layout as host_layout
from ..host.archives import Archive
from ..host.layout import Layout
from ..model.manifests import Manifest, blobs_of
from ..net.registry_api import RegistryAPI


def _maintenance(settings: Settings, client, upstream, log):
    """A plain registry on the mirror's storage, on a free loopback port, for the time of the block."""
    layout = Layout.of(settings)
    image = ensure_registry_image(client, settings.registry_image, log=log)
    storage_drivers.require(client, image, settings.storage.backend)
    if settings.storage.backend == "filesystem":
        layout.storage_dir(upstream).mkdir(parents=True, exist_ok=True)
    spec = containers.maintenance_plan(settings, layout, image, upstream, ports.free_loopback_endpoint(),
                                       host_layout.http_secret(layout))
    return containers.temporary(client, image, spec, log=log)


def push_archive(api: RegistryAPI, archive: Archive, storage_dir: Path | None, log=print) -> str:
    """Push blobs, manifests and the tag; returns what the tag points at."""
    ref, meta = archive.ref, archive.meta
    repository = ref.repository
    tag_or_digest = ref.tag or ref.digest
    chosen = []
    for entry in meta["manifests"]:
        manifest = Manifest(entry["digest"], entry["mediaType"], archive.read(entry["digest"]))
        chosen.append(manifest)
        for descriptor in blobs_of(manifest.json):
            digest = descriptor["digest"]
            if api.blob_exists(repository, digest):
                continue
            with archive.section(digest) as body:
                api.upload_blob(repository, digest, body)
    top_entry = meta["top"]
    top = Manifest(top_entry["digest"], top_entry["mediaType"], archive.read(top_entry["digest"]))
    for manifest in chosen:
        if manifest.digest != top.digest:
            api.put_manifest(repository, manifest.digest, manifest)
    if not top.is_index or meta.get("complete"):
        api.put_manifest(repository, tag_or_digest, top)
        return top.digest
    if storage_dir is not None:
        storage.link_partial_index(storage_dir, repository, ref.tag, top)
        return top.digest
    # Object storage: no layout to write into. The tag then names the platform
    # image, whose digest differs from the upstream's index digest.
    api.put_manifest(repository, tag_or_digest, chosen[0])
    log(f"{ref}: only some platforms archived and the storage is not a file system: "
        f"the tag now names the {chosen[0].digest[:19]} platform image, not the index {top.digest[:19]}")
    return chosen[0].digest


def restore(settings: Settings, client, paths=None, log: Callable[[str], None] = print) -> list[str]:
    """Restore archives into the mirror; returns the archives that failed.

    Each archive's .sha256 is checked first; a bad archive is reported and
    skipped, the others are still restored.
    """
    layout = Layout.of(settings)
    by_registry = {u.registry: u for u in settings.upstreams}
    failures: list[str] = []
    queued: dict[str, list[Archive]] = {}
    archive_files = host_archives.archive_paths(layout, paths)
    if not archive_files:
        log(f"no archives to restore in {layout.archives_dir}")
    for path in archive_files:
        try:
            host_archives.verify_checksum(path)
            archive = host_archives.open_archive(path)
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
            with _maintenance(settings, client, upstream, log) as endpoint:
                api = RegistryAPI(endpoint.url)
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
