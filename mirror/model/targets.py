"""The images to keep warm, each matched to the mirror of its registry (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from .settings import Settings, Upstream
from . import images


@dataclass(frozen=True)
class Target:
    ref: images.ImageRef
    upstream: Upstream
    source: str            # where it was listed: Kconfig symbol, file:line, --scan


def targets(settings: Settings, listed: list[tuple[str, str]]) -> tuple[list[Target], list[str]]:
    """Normalised, deduplicated targets; references of unmirrored registries are errors."""
    by_registry = {u.registry: u for u in settings.upstreams}
    seen: dict[str, Target] = {}
    errors = []
    for reference, source in listed:
        ref = images.parse(reference)
        upstream = by_registry.get(ref.registry)
        if upstream is None:
            errors.append(f"{source}: {reference}: registry {ref.registry} is not mirrored "
                          f"(mirrored: {', '.join(by_registry)}); enable it in 'make menuconfig'")
            continue
        seen.setdefault(str(ref), Target(ref, upstream, source))
    return list(seen.values()), errors
