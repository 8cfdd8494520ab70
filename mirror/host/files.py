"""Host file writes that never leave a half-written or clobbered file."""

import os
import shutil
import tempfile
import time
from pathlib import Path


def atomic_write(path, data, mode: int = 0o644) -> Path:
    """Write `data` (str or bytes) to `path` via a temp file and rename.

    The temp file gets `mode` before any byte is written, so a secret never
    sits in a world-readable file, not even for a moment.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def backup(path) -> Path | None:
    """Copy an existing file to `path.bak-<timestamp>` (mode kept); None if absent."""
    path = Path(path)
    if not path.exists():
        return None
    target = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}.{n}")
        n += 1
    shutil.copy2(path, target)
    return target
