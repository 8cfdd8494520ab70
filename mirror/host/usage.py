"""The cache's lifecycle records, under <mirror>/lifecycle/ (atomic JSON files).

- `usage-<upstream>.json`: when each cached manifest was last pulled
  (`repository@digest` and `repository:tag` -> product time, seconds), and
  the cursor: the Docker log timestamp (ns) of the last request line read,
  so that reading the log again counts nothing twice;
- `pins.json`: per image to keep warm (its normalised reference), its
  upstream, repository and digests, newest first: the current one and the
  previous ones kept for a rollback.

A lock on `.lock` makes readers and writers (refresh, gc, status, the
keeper) take turns; flock goes with the process, so none is ever left.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from dataclasses import dataclass, field
from pathlib import Path

from .files import atomic_write


def lifecycle_dir(mirror_root) -> Path:
    return Path(mirror_root) / "lifecycle"


@contextlib.contextmanager
def locked(mirror_root):
    directory = lifecycle_dir(mirror_root)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        # A record that cannot be read is rebuilt from what the log still holds.
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class Usage:
    cursor_ns: int = 0
    used: dict[str, float] = field(default_factory=dict)
    ahead_ns: list[int] = field(default_factory=list)   # stamps counted above the cursor (model.log_cursor)

    def note(self, key: str, when: float) -> bool:
        """Record a use at `when` (the latest use wins); True when that changed the record."""
        if self.used.get(key, 0.0) >= when:
            return False
        self.used[key] = when
        return True


def usage_path(mirror_root, upstream_key: str) -> Path:
    return lifecycle_dir(mirror_root) / f"usage-{upstream_key}.json"


def read_usage(mirror_root, upstream_key: str) -> Usage:
    data = _read(usage_path(mirror_root, upstream_key))
    used = data.get("used") if isinstance(data.get("used"), dict) else {}
    cursor = data.get("cursor_ns")
    ahead = data.get("ahead_ns") if isinstance(data.get("ahead_ns"), list) else []
    return Usage(cursor if isinstance(cursor, int) else 0,
                 {k: float(v) for k, v in used.items() if isinstance(v, (int, float))},
                 [s for s in ahead if isinstance(s, int)])


def write_usage(mirror_root, upstream_key: str, usage: Usage) -> None:
    atomic_write(usage_path(mirror_root, upstream_key),
                 json.dumps({"cursor_ns": usage.cursor_ns, "used": usage.used,
                             "ahead_ns": usage.ahead_ns}, indent=1, sort_keys=True))


def pins_path(mirror_root) -> Path:
    return lifecycle_dir(mirror_root) / "pins.json"


def read_pins(mirror_root) -> dict[str, dict]:
    """{reference: {"upstream", "repository", "digests": [newest first]}}."""
    return {ref: entry for ref, entry in _read(pins_path(mirror_root)).items()
            if isinstance(entry, dict) and isinstance(entry.get("digests"), list)}


def write_pins(mirror_root, pins: dict[str, dict]) -> None:
    atomic_write(pins_path(mirror_root), json.dumps(pins, indent=1, sort_keys=True))


def collections_path(mirror_root) -> Path:
    return lifecycle_dir(mirror_root) / "collections.json"


def read_collections(mirror_root) -> dict[str, float]:
    """Running totals of the collections that dropped something (the metrics read them)."""
    data = _read(collections_path(mirror_root))
    found = {}
    for key in ("collections", "evictions", "freed_bytes", "last"):
        try:
            found[key] = float(data.get(key) or 0)
        except (TypeError, ValueError):
            found[key] = 0.0
    return found


def note_collection(mirror_root, evictions: int, freed_bytes: int, when: float) -> None:
    with locked(mirror_root):
        totals = read_collections(mirror_root)
        totals.update(collections=totals["collections"] + 1, evictions=totals["evictions"] + evictions,
                      freed_bytes=totals["freed_bytes"] + max(0, freed_bytes), last=when)
        atomic_write(collections_path(mirror_root), json.dumps(totals, indent=1, sort_keys=True))
