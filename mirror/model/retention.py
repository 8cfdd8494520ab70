"""The cache's retention policy (pure): what to keep, what to drop, and when.

An image is one top-level manifest (or index) of one repository, with the
platform manifests, config and layers it names. Pinned images (the images to
keep warm at their current digest and the K digests before it) are never
dropped. Unpinned ones go once unused for `keep_unused_days`, and, while the
cache is over `max_bytes`, least recently pulled first. Blobs are shared
between images: dropping an image frees only the blobs no kept image names,
which is also what distribution's garbage-collect (mark and sweep) deletes.

Use means a client's pull: the product's own pulls (warm, refresh, archive)
never count (services.lifecycle reads them out of the log). A digest a moving
tag left behind beyond the K previous ones (`retired`, when the refresh
unpinned it) goes at the next collection unless a client pulled it since;
one a client pulls (by digest) stays until unused for `keep_unused_days`.

Times come from a host clock that may have been fast and set back: a last
use or a retirement in the future never drops anything (`sane_times`).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

DAY = 86400.0


class Clock:
    """The product's time. Tests shift it by days instead of sleeping."""

    offset: float = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def at(self, real: float) -> float:
        """The product time of an instant of the real clock (a log line's time, a file's mtime)."""
        return real + self.offset

    def real_ns(self) -> int:
        """The host clock now, as Docker stamps log lines (ns): what a log cursor compares with."""
        return time.time_ns()


@dataclass
class ShiftedClock(Clock):
    offset: float = 0.0

    def advance(self, days: float) -> None:
        self.offset += days * DAY


SYSTEM_CLOCK = Clock()


# An upload untouched this long is abandoned: distribution's own purger on a filesystem
# (registry-config.yml.j2 uploadpurging.age) and the collection on object stores.
UPLOAD_AGE_HOURS = 168


@dataclass(frozen=True)
class Policy:
    """The cache's retention policy (Kconfig "Cache lifecycle")."""

    keep_unused_days: int       # unpinned images unused this long are dropped
    max_bytes: int              # the whole cache's limit (Kconfig: GiB); 0: none
    keep_previous: int          # digests kept per image to keep warm, besides its current one


@dataclass(frozen=True)
class CachedImage:
    upstream: str                   # upstream key
    repository: str
    digest: str                     # the top-level manifest or index
    tags: tuple[str, ...]
    manifests: tuple[str, ...]      # the top one and the platform manifests present
    blobs: frozenset[str]           # every digest it names that the store holds, manifests included
    last_pulled: float              # product time: a client's last pull, else when it was cached
    pinned: bool
    retired: float | None = None    # when a moving tag left it behind beyond the K kept (product time)

    @property
    def name(self) -> str:
        shown = ",".join(self.tags) if self.tags else "(untagged)"
        return f"{self.repository}:{shown}@{self.digest}"


@dataclass(frozen=True)
class Eviction:
    image: CachedImage
    reason: str
    freed: int                      # bytes that go with it (blobs no kept image names)


@dataclass
class Plan:
    evictions: list[Eviction] = field(default_factory=list)
    bytes_before: int = 0           # bytes of the blobs the images name
    bytes_after: int = 0            # the same once the evictions are collected
    over_limit: bool = False        # still over max_bytes: the pinned images alone exceed it

    @property
    def freed(self) -> int:
        return sum(e.freed for e in self.evictions)


def left_behind(image: CachedImage) -> bool:
    """Unpinned by a moving tag, and no client pulled it since."""
    return not image.pinned and image.retired is not None and image.last_pulled <= image.retired


def drop_time(image: CachedImage, policy: Policy) -> float | None:
    """When the policy drops the image for want of use (None: pinned, never)."""
    if image.pinned:
        return None
    if left_behind(image):
        return image.retired
    return image.last_pulled + policy.keep_unused_days * DAY


def sane_times(last_pulled: float, retired: float | None, now: float
               ) -> tuple[float, float | None, list[str]]:
    """(last use, retirement, what was wrong) with the future taken out.

    A last use ahead of `now` (recorded while the clock was fast) counts as
    now: the image keeps its full `keep_unused_days`. A retirement ahead of
    `now` is forgotten: a client's pull after it, stamped by the corrected
    clock, would look older than the retirement and the image would go.
    """
    wrong = []
    if last_pulled > now:
        wrong.append(f"last use {last_pulled - now:.0f} s ahead of the clock")
        last_pulled = now
    if retired is not None and retired > now:
        wrong.append(f"left behind {retired - now:.0f} s ahead of the clock")
        retired = None
    return last_pulled, retired, wrong


def plan(images: list[CachedImage], sizes: dict[tuple[str, str], int], policy: Policy,
         now: float, must_free: int = 0) -> Plan:
    """What to drop now. `sizes`: (upstream, digest) -> bytes of each stored blob.

    `must_free`: bytes to free at least however recently unpinned images were
    pulled (the disk filled up); least recently pulled go first.
    """
    refs = Counter((i.upstream, b) for i in images for b in i.blobs)
    total = sum(sizes.get(key, 0) for key in refs)
    result = Plan(bytes_before=total)

    def evict(image: CachedImage, reason: str) -> None:
        nonlocal total
        freed = 0
        for blob in image.blobs:
            key = (image.upstream, blob)
            refs[key] -= 1
            if refs[key] == 0:
                freed += sizes.get(key, 0)
        total -= freed
        result.evictions.append(Eviction(image, reason, freed))

    candidates = sorted((i for i in images if not i.pinned), key=lambda i: (i.last_pulled, i.name))
    cutoff = now - policy.keep_unused_days * DAY
    left = []
    for image in candidates:
        if left_behind(image):
            evict(image, f"left behind by its moving tag (beyond the {policy.keep_previous} previous "
                         "digest(s) kept) and not pulled by a client since")
        elif image.last_pulled < cutoff:
            evict(image, f"not pulled for {policy.keep_unused_days} days")
        else:
            left.append(image)
    target = policy.max_bytes or total
    if must_free:
        target = min(target, result.bytes_before - must_free)
    for image in left:
        if total <= target:
            break
        evict(image, "over the size limit" if policy.max_bytes and total > policy.max_bytes
              else "to make room on a full disk")
    result.bytes_after = total
    result.over_limit = bool(policy.max_bytes) and total > policy.max_bytes
    return result
