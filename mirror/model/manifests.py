"""Image manifests and indexes (OCI and Docker v2): their blobs and platforms (pure)."""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[:2]
OCI_INDEX = INDEX_TYPES[0]


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES or "manifests" in self.json


def blobs_of(manifest: dict) -> list[dict]:
    """The descriptors of an image manifest's config and layers."""
    return [manifest["config"], *manifest.get("layers", [])] if "config" in manifest else \
        list(manifest.get("layers", []))


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
    for child in index.get("manifests", []):
        plat = child.get("platform") or {}
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
