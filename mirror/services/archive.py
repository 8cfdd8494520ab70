"""`pull --archive`: the warm images as files, for offline hosts.

Each archive is built from the mirror over the registry API, byte for byte:
the original manifest(s), the config and the layer blobs as the registry
stores them (gzip). Nothing is decompressed or recompressed, so writing an
archive costs one sequential read and write, and the digests survive the
round trip. The format is mirror.model.archive_format.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path

from ..config import image_lists
from ..model.settings import Settings, Upstream
from ..engine import containers
from ..errors import ArchiveError, MirrorError
from ..host import archives
from ..host import credential
from ..host.layout import Layout
from ..model import images
from ..model.archive_format import (META, ImageManifest, archive_name, blob_path, checksum_path,
                                    load_view, metadata, metadata_matches, oci_index)
from ..model.manifests import Manifest, chosen_platforms, host_platform, select_platforms
from ..net.probes import wait_until_answering
from ..net.registry_api import RegistryAPI
from ..render import human_size

MIRROR_WAIT = 2.0  # seconds for a mirror to answer before its images are reported not archived


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
    chosen = select_platforms(top.json, platforms)
    if not chosen:
        raise ArchiveError(f"no manifest for platform(s) {', '.join(sorted(platforms or []))}")
    return top, [ImageManifest(api.get_manifest(ref.repository, child["digest"]), child.get("platform", {}))
                 for child in chosen]


def write_archive(api: RegistryAPI, ref: images.ImageRef, top: Manifest, chosen: list[ImageManifest],
                  platforms: set[str] | None, path: Path) -> tuple[int, str]:
    """Stream the archive of `ref` from `api` into `path`; returns (size, sha256 hex)."""
    manifests = {top.digest: top.body, **{m.manifest.digest: m.manifest.body for m in chosen}}
    blobs = {d["digest"]: d for m in chosen for d in m.blobs}

    def fill(tar) -> None:
        tar.add(META, json.dumps(metadata(ref, top, chosen, platforms), indent=2).encode())
        tar.add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        tar.directory("blobs/")
        tar.directory("blobs/sha256/")
        for digest, body in manifests.items():
            tar.add(blob_path(digest), body)
        for digest, descriptor in blobs.items():
            tar.begin(blob_path(digest), descriptor["size"])
            api.fetch_blob(ref.repository, digest, sink=tar.write)
            tar.end()
        tar.add("index.json", json.dumps(oci_index(ref, top)).encode())
        tar.add("manifest.json", json.dumps(load_view(ref, chosen, host_platform())).encode())

    return archives.write(path, fill)


def _up_to_date(path: Path, top: Manifest, chosen: list[ImageManifest], platforms: set[str] | None) -> bool:
    return checksum_path(path).exists() and metadata_matches(archives.read_metadata(path), top, chosen, platforms)


def archive_images(settings: Settings, client=None, log: Callable[[str], None] = print, prune: bool = False,
                   extra: list[tuple[str, str]] = (), platform: str | None = None) -> list[str]:
    """Archive every warm image from the mirror; returns what failed.

    `platform` (os/arch[/variant]): which platform of a multi-platform image
    to archive; default the host's, or all with PULL_ALL_PLATFORMS.
    `client` (optional) only sharpens the message when a mirror is down.
    """
    layout = Layout.of(settings)
    wanted, errors = image_lists.wanted_images(settings, list(extra))
    for error in errors:
        log(f"skipped: {error}")
    platforms = chosen_platforms(settings.pull_all_platforms, platform)
    failures = list(errors)
    answering: dict[str, bool] = {}
    for target in wanted:
        reference, upstream = str(target.ref), target.upstream
        path = layout.archives_dir / archive_name(reference)
        if upstream.key not in answering:
            answering[upstream.key] = wait_until_answering(upstream.endpoint, MIRROR_WAIT)
        if not answering[upstream.key]:
            log(f"{reference}: NOT archived: {_down(settings, upstream, client)}")
            failures.append(reference)
            continue
        api = RegistryAPI.of_mirror(upstream.endpoint, settings.tls_certificate, credential.of(settings))
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
        log(f"{reference}: archived {human_size(size)} in {seconds:.1f} s "
            f"({human_size(size / max(seconds, 1e-6))}/s) to {path}")
    if prune:
        keep = {archive_name(str(t.ref)) for t in wanted}
        archives.prune_archives(layout, keep, log=log)
    return failures


def _down(settings: Settings, upstream: Upstream, client) -> str:
    state = ""
    if client is not None:
        container = containers.mirror_container(client, settings, upstream)
        state = f"; no container {container.name}" if container.state == "absent" else \
            f"; container {container.name} is {container.state}"
    return (f"the {upstream.registry} mirror does not answer on {upstream.endpoint.client_address}"
            f"{state}: run 'make docker-mirror'")
