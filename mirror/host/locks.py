"""Advisory locks (flock) on files of the mirror directory, and who holds them.

- `.refresh.lock`: one refresh run at a time;
- `.setup.lock`: one writer of the mirror containers at a time (setup, a
  refresh's mode check, pinning's stop and start, the keeper, remove), so
  the keeper never re-creates a container that pinning stopped on purpose;
- `.keeper.lock`: one keeper per mirror directory, held for its whole life,
  holding its pid.

flock locks go with the process: a killed holder never leaves one behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Callable

from ..errors import MirrorError


@contextlib.contextmanager
def held(path: Path, *, wait: bool = True, on_wait: Callable[[], None] | None = None,
         busy: Callable[[], MirrorError] | None = None):
    """Hold the lock on `path` for the block; wait for it, or raise busy() when `wait` is off."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise (busy() if busy else MirrorError(f"{path} is locked by another process")) from None
            if on_wait is not None:
                on_wait()
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield lock


def record_pid(lock) -> None:
    """Write this process's pid into a lock file it holds (for holder())."""
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()


def holder(path: Path) -> int | None:
    """The pid recorded in `path` while a live process holds its lock; None when nobody does."""
    try:
        lock = open(path)
    except FileNotFoundError:
        return None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = lock.read().strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(lock, fcntl.LOCK_UN)
        return None
