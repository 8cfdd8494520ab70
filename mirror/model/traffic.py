"""Pure figures of what the mirror saves: hits, misses, bytes served and fetched upstream,
Docker Hub's rate-limit headers, and the small history of samples the status page plots.

distribution 2.8's own proxy counters (expvar) cannot be trusted (14 blob hits,
0 misses, 0 bytes pulled after two cold pulls), so the product counts from the
registry's request log: a blob served that the cache did not hold before is a
miss (its bytes came from the upstream once), every other blob served is a hit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Samples kept on disk for the plots: at one a minute, about two days.
HISTORY_LIMIT = 2880


@dataclass
class Traffic:
    """One mirror's running totals, kept on disk so that the counters never go back."""

    cursor_ns: int = 0                     # the last request-log time counted
    sampled: float = 0.0                   # when the last sample was taken
    hits: int = 0
    misses: int = 0
    served_bytes: int = 0                  # bytes of blobs sent to clients
    upstream_bytes: int = 0                # bytes of the blobs the misses stored
    seen: dict[str, int] = field(default_factory=dict)   # digest -> size, blobs known to be cached

    @property
    def saved_bytes(self) -> int:
        return self.served_bytes - self.upstream_bytes

    def count(self, digest: str, sent: int, stored: tuple[int, float] | None, last_sample: float) -> None:
        """One blob served; `stored`: (size, time stored) of its data in the cache, or None.

        A digest already seen is a hit. One not seen whose data was stored before
        the last sample got there without a request we saw (a restore, a copy)
        and is a hit too; otherwise it is the miss that fetched it.
        """
        self.served_bytes += sent
        if digest in self.seen:
            self.hits += 1
            return
        size, stored_at = stored if stored else (sent, last_sample)
        self.seen[digest] = size
        if stored and stored_at < last_sample - 1.0:
            self.hits += 1
            return
        self.misses += 1
        self.upstream_bytes += size

    def to_json(self) -> dict:
        return {"cursor_ns": self.cursor_ns, "sampled": self.sampled, "hits": self.hits, "misses": self.misses,
                "served_bytes": self.served_bytes, "upstream_bytes": self.upstream_bytes, "seen": self.seen}

    @classmethod
    def from_json(cls, data: dict) -> "Traffic":
        ints = {k: int(data.get(k) or 0) for k in ("cursor_ns", "hits", "misses", "served_bytes",
                                                    "upstream_bytes")}
        seen = {str(k): int(v) for k, v in (data.get("seen") or {}).items()}
        return cls(sampled=float(data.get("sampled") or 0.0), seen=seen, **ints)


def hit_ratio(hits: int, misses: int) -> float | None:
    """Hits over blobs served; None before anything was served."""
    total = hits + misses
    return hits / total if total else None


_RATELIMIT = re.compile(r"^\s*(\d+)\s*(?:;\s*w=(\d+))?")


@dataclass(frozen=True)
class Headroom:
    """Docker Hub's answer to a manifest HEAD: pulls allowed and left in the window."""

    limit: int | None
    remaining: int | None
    window_seconds: int | None
    source: str = ""            # the address the limit applies to, as Docker Hub names it
    error: str = ""             # why there is no figure (unreachable, headers absent)

    def to_json(self) -> dict:
        return {"limit": self.limit, "remaining": self.remaining, "window_seconds": self.window_seconds,
                "source": self.source, "error": self.error}

    @property
    def text(self) -> str:
        if self.remaining is None:
            return f"unknown: {self.error}" if self.error else "unknown"
        hours = f" per {self.window_seconds / 3600:g} h" if self.window_seconds else ""
        return f"{self.remaining} of {self.limit} pulls left{hours}"


def parse_headroom(headers) -> Headroom:
    """The `ratelimit-limit` / `ratelimit-remaining` headers ("100;w=21600"), case-insensitive."""
    lowered = {k.lower(): v for k, v in headers.items()}
    limit = _RATELIMIT.match(lowered.get("ratelimit-limit", ""))
    remaining = _RATELIMIT.match(lowered.get("ratelimit-remaining", ""))
    if not limit or not remaining:
        return Headroom(None, None, None, error="the upstream sends no ratelimit headers (no limit)")
    window = limit[2] or remaining[2]
    return Headroom(int(limit[1]), int(remaining[1]), int(window) if window else None,
                    source=lowered.get("docker-ratelimit-source", ""))


def add_sample(history: list[dict], sample: dict, limit: int = HISTORY_LIMIT) -> list[dict]:
    """The history with `sample` appended, oldest dropped beyond `limit`."""
    return [*history, sample][-limit:]


def series(history: list[dict], key: str) -> list[tuple[float, float]]:
    """(time, value) of one figure across the history, skipping samples without it."""
    return [(s["t"], s[key]) for s in history if isinstance(s.get(key), (int, float))]


def polyline(points: list[tuple[float, float]], width: int, height: int, top: float | None = None) -> str:
    """SVG polyline points scaled into width x height (y grows downwards), empty when < 2 points.

    `top`: the value at the top of the box (1.0 for a ratio); default the largest."""
    if len(points) < 2:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) or 1
    y0, y1 = min(0.0, min(ys)), max(ys) if top is None else top
    dx, dy = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    return " ".join(f"{(x - x0) / dx * width:.1f},{height - (y - y0) / dy * height:.1f}" for x, y in points)
