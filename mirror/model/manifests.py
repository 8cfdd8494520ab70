"""Image manifests and indexes (OCI and Docker v2): their blobs and platforms (pure).

A manifest comes from a registry or an archive, so its shape is checked
where it is read: a JSON object (not a list, a string, or nesting deep
enough to exhaust the parser), descriptors that are objects, and every
digest `sha256:` plus 64 hex digits (model.digests) before it names a
path, a URL or a tar member. Anything else is InvalidManifest or
InvalidDigest, one image's failure rather than a traceback.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass

from ..errors import InvalidDigest, InvalidManifest
from . import digests

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[:2]
OCI_INDEX = INDEX_TYPES[0]
MAX_MANIFEST = 4 << 20     # distribution's own limit on a manifest it accepts


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    body: bytes

    @property
    def json(self) -> dict:
        return parse(self.body, f"manifest {self.digest}")

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or "manifests" in self.json


def parse(body: bytes, what: str) -> dict:
    """A manifest's JSON object; InvalidManifest for anything else."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise InvalidManifest(f"{what}: not JSON ({err.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise InvalidManifest(f"{what}: a JSON {type(value).__name__}, not an object")
    return value


def _descriptors(manifest: dict, key: str) -> list[dict]:
    found = manifest.get(key, [])
    if not isinstance(found, list) or not all(isinstance(d, dict) for d in found):
        raise InvalidManifest(f"manifest: {key!r} is not a list of descriptors")
    for descriptor in found:
        digests.require(descriptor.get("digest"), f"manifest: a digest in {key!r}")
    return found


def children_of(index: dict) -> list[dict]:
    """The descriptors of an index's manifests, their digests checked."""
    return _descriptors(index, "manifests")


def blobs_of(manifest: dict) -> list[dict]:
    """The descriptors of an image manifest's config and layers, their digests checked."""
    layers = _descriptors(manifest, "layers")
    if "config" not in manifest:
        return list(layers)
    config = manifest["config"]
    if not isinstance(config, dict):
        raise InvalidManifest("manifest: 'config' is not a descriptor")
    digests.require(config.get("digest"), "manifest: the config digest")
    return [config, *layers]


def host_platform() -> str:
    """This host's platform as registries name it: linux/amd64, linux/arm64, ..."""
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)
    return f"linux/{arch}"


def platform_name(plat: dict) -> str:
    """os/architecture[/variant] of a platform object."""
    return "/".join(p for p in (plat.get("os"), plat.get("architecture"), plat.get("variant")) if p)


def select_platforms(index: dict, platforms: set[str] | None) -> list[dict]:
    """Children of an index for `platforms` (None: all); attestation manifests skipped."""
    chosen = []
    for child in _descriptors(index, "manifests"):
        plat = child.get("platform") or {}
        if not isinstance(plat, dict):
            raise InvalidManifest("index: a 'platform' that is not an object")
        if plat.get("os") == "unknown":  # buildkit attestations, not runnable images
            continue
        name = f"{plat.get('os', '')}/{plat.get('architecture', '')}"
        if platforms is None or name in platforms or \
                f"{name}/{plat.get('variant', '')}".rstrip("/") in platforms:
            chosen.append(child)
    return chosen


def chosen_platforms(pull_all: bool, platform_: str | None = None) -> set[str] | None:
    """The platforms to fetch: `platform_` when given, else all (None) or this host's."""
    if platform_:
        return {platform_}
    return None if pull_all else {host_platform()}


def stored_problem(body: bytes | None) -> str | None:
    """What makes a stored manifest unusable, or None: the readers of a registry's storage
    skip such a one (and name it damaged) rather than fail on it. An index's children and
    an image's config and layers must be digests; a schema 1 manifest names no descriptors."""
    if body is None:
        return "its blob cannot be read"
    try:
        manifest = parse(body, "the manifest")
        children_of(manifest)
        blobs_of(manifest)
    except (InvalidManifest, InvalidDigest) as err:
        return str(err)
    return None
