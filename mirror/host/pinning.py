"""Keeping the images to keep warm from expiring out of a proxy mirror.

distribution 2.8 forgets cached content 7 days after caching it (a fixed
TTL). It tracks that in scheduler-state.json at the storage root, read at
start and saved every few seconds. An entry dropped from that file while the
registry is stopped never expires, so pinning = removing the entries of the
pinned images' manifests and blobs, with the mirror briefly stopped. Content
pulled ad hoc keeps its entries and still expires.
"""

from __future__ import annotations

import json
from pathlib import Path

from .files import atomic_write
from .storage import StorageTree


def state_path(storage_dir: Path) -> Path:
    return StorageTree(storage_dir).scheduler_state


def read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        return {}


def keys_to_pin(state: dict, pins: set[str]) -> set[str]:
    """The entries of `state` that are pinned ('repository@digest' keys)."""
    return {key for key in state if key in pins}


def without(state: dict, keys: set[str]) -> dict:
    return {key: entry for key, entry in state.items() if key not in keys}


def needs_pinning(storage_dir: Path, pins: set[str], fresh: set[str]) -> bool:
    """Whether the mirror must be stopped to pin: something fresh, or a pinned entry still there.

    `pins`: every 'repository@digest' of the images to keep; `fresh`: those
    cached by this run. The registry saves its state only every few seconds,
    so fresh entries may not be in the file yet: the mirror is stopped at
    once, and an entry it never saved never expires, which is what pinning
    wants. Nothing to drop and nothing fresh: the mirror keeps running.
    """
    return bool(fresh) or bool(keys_to_pin(read_state(state_path(storage_dir)), pins))


def drop_pinned(storage_dir: Path, pins: set[str]) -> int:
    """Drop the pinned entries from the expiry state (the registry stopped); returns how many."""
    path = state_path(storage_dir)
    state = read_state(path)
    keys = keys_to_pin(state, pins)
    atomic_write(path, json.dumps(without(state, keys)), mode=0o644)
    return len(keys)
