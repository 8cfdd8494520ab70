"""Sharing the mirror directory read-only over NFS (/etc/exports.d)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import HostToolError
from .files import atomic_write

EXPORTS_DIR = Path("/etc/exports.d")


def export(text: str, what: str, log=print, *, exports_file: Path) -> None:
    """Write the exports file `text` (when it differs) and have exportfs read it."""
    if exports_file.exists() and exports_file.read_text() == text:
        return
    atomic_write(exports_file, text)
    if shutil.which("exportfs"):
        _exportfs()
        log(f"NFS: exported {what}")
    else:
        log(f"NFS: wrote {exports_file}, but exportfs is missing: install nfs-kernel-server "
            "(apt-get install nfs-kernel-server) and run 'exportfs -ra'")


def unexport(exported: str, what: str, log=print, *, exports_file: Path) -> bool:
    """Remove the exports file when it exports `exported` (the path as the file writes
    it: exactly, not a path it merely starts with); True when it did."""
    try:
        lines = exports_file.read_text().splitlines()
    except FileNotFoundError:
        return False
    if not any(line.startswith(f"{exported} ") for line in lines):
        return False
    exports_file.unlink()
    if shutil.which("exportfs"):
        _exportfs()
    log(f"NFS: no longer exporting {what}")
    return True


def _exportfs() -> None:
    done = subprocess.run(["exportfs", "-ra"], capture_output=True, text=True)
    if done.returncode != 0:
        raise HostToolError(f"exportfs -ra failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()}")
