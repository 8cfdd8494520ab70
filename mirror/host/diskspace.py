"""Free space of the file system that holds the cache, and the words for a full one.

A full disk shows up to the warm engine only as a blob the registry stops
storing (distribution logs the write error in its container and gives up);
the free space of the storage's file system tells that apart from an
upstream that went away.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..render import human_size

# The refresh marks each image that failed for want of room with this, so that the
# refresh log, last-refresh.json and `make docker-mirror-status` say it.
NOTE = " (disk full)"


@dataclass(frozen=True)
class Space:
    path: str
    free: int     # bytes an unprivileged writer may still use (f_bavail)
    total: int

    def __str__(self) -> str:
        return f"{self.path} has {human_size(self.free)} free of {human_size(self.total)}"


def space(path) -> Space | None:
    """The free space where `path` lives; None when it cannot be told (gone, not local)."""
    try:
        found = os.statvfs(path)
    except OSError:
        return None
    return Space(os.fspath(path), found.f_bavail * found.f_frsize, found.f_blocks * found.f_frsize)


# Below this much free space, besides what is needed, a file system counts as full: a small
# blob stalls there too (its directories, the registry's own records need room), and a
# blob that fills the disk may hold it, unfinished, while a smaller one waits.
RESERVE = 1 << 20


def no_room(path, needed: int) -> Space | None:
    """The space at `path` when it is short of `needed` bytes (and RESERVE), else None."""
    found = space(path)
    return found if found is not None and found.free < needed + RESERVE else None


def is_disk_full(err: BaseException) -> bool:
    """An OSError that says the file system is full (or out of quota)."""
    import errno
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)
