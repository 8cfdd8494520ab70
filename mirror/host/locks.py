"""Advisory locks (flock) on files of the mirror directory, and who holds them.

- `.refresh.lock`: one refresh run at a time;
- `.setup.lock`: one writer of the mirror containers at a time (setup, a
  refresh's mode check, the garbage collection's stop and start, the keeper,
  remove), so the keeper never re-creates a container stopped on purpose;
- `.keeper.lock`: one keeper per mirror directory, held for its whole life,
  holding its pid.

flock locks go with the process: a killed holder never leaves one behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from pathlib import Path
from typing import Callable

from ..errors import HostToolError, MirrorError


@contextlib.contextmanager
def held(path: Path, *, wait: bool = True, on_wait: Callable[[], None] | None = None,
         busy: Callable[[], MirrorError] | None = None):
    """Hold the lock on `path` for the block; wait for it, or raise busy() when `wait` is off."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path, "a+")
    except OSError as err:
        raise HostToolError(f"cannot lock {path}: {err.strerror or err} (is DOCKER_MIRROR_PATH a "
                            "directory this user may write?)") from None
    with lock:
        if not _try(lock):
            if not wait:
                raise (busy() if busy else MirrorError(f"{path} is locked by another process")) from None
            if on_wait is not None:
                on_wait()
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield lock


def _try(lock, attempts: int = 5) -> bool:
    # A few tries: holder() takes the lock shared for an instant to look.
    for attempt in range(attempts):
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.02 * (attempt < attempts - 1))
    return False


def record_pid(lock) -> None:
    """Write this process's pid into a lock file it holds (for holder())."""
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()


def holder(path: Path) -> int | None:
    """The pid recorded in `path` while a live process holds its lock; None when nobody does
    (0: held, but its holder has not written its pid within a second)."""
    try:
        lock = open(path)
    except FileNotFoundError:
        return None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            for _ in range(20):   # held: its pid follows the lock at once
                lock.seek(0)
                text = lock.read().strip()
                if text.isdigit():
                    return int(text)
                time.sleep(0.05)
            return 0
        fcntl.flock(lock, fcntl.LOCK_UN)
        return None


def stop_holder(path: Path, what: str, timeout: float) -> int | None:
    """SIGTERM the process holding the lock on `path` (a background keeper or service) and
    wait until it lets go; its pid, or None when nobody held it. Raises HostToolError
    naming the pid when it still holds the lock after `timeout` seconds: a second one
    started beside it would run on with the old (a keeper, its old settings)."""
    pid = holder(path)
    if not pid:
        if pid == 0:
            raise HostToolError(f"{what} holds {path} but wrote no pid: stop it by hand")
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    except PermissionError:
        raise HostToolError(f"cannot stop {what} (pid {pid}): it is another user's; "
                            "run the command as that user or as root") from None
    deadline = time.monotonic() + timeout
    while (still := holder(path)) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if still is not None:
        # No "nothing was changed" here: the caller may have changed things before.
        raise HostToolError(f"{what} (pid {still or pid}) still holds {path} {timeout:g} s after "
                            f"SIGTERM: stop it by hand (kill -9 {still or pid}), then run the "
                            "command again")
    return pid
