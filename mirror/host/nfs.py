"""Sharing the mirror directory read-only over NFS (/etc/exports.d)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .files import atomic_write

EXPORTS_FILE = Path("/etc/exports.d/docker-mirror.exports")


def export(text: str, what: str, log=print, exports_file: Path = EXPORTS_FILE) -> None:
    """Write the exports file `text` (when it differs) and have exportfs read it."""
    if exports_file.exists() and exports_file.read_text() == text:
        return
    atomic_write(exports_file, text)
    if shutil.which("exportfs"):
        subprocess.run(["exportfs", "-ra"], check=True)
        log(f"NFS: exported {what}")
    else:
        log(f"NFS: wrote {exports_file}, but exportfs is missing: install nfs-kernel-server "
            "(apt-get install nfs-kernel-server) and run 'exportfs -ra'")


def unexport(path: str, log=print, exports_file: Path = EXPORTS_FILE) -> bool:
    """Remove the exports file when it exports `path`; True when it did."""
    try:
        if path not in exports_file.read_text():
            return False
    except FileNotFoundError:
        return False
    exports_file.unlink()
    if shutil.which("exportfs"):
        subprocess.run(["exportfs", "-ra"], check=True)
    log(f"NFS: no longer exporting {path}")
    return True
