"""Refresh logs: logs/update-YYYYmmdd-HHMMSS.log, timestamped lines, pruned by age."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path

from .layout import Layout

LOG_PATTERN = "update-*.log"


def new_log_path(layout: Layout, now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    path = layout.logs_dir / f"update-{stamp}.log"
    n = 1
    while path.exists():
        path = layout.logs_dir / f"update-{stamp}-{n}.log"
        n += 1
    return path


def prune_logs(layout: Layout, retention_days: int, now: float | None = None) -> list[Path]:
    cutoff = (now or time.time()) - retention_days * 86400
    old = [p for p in layout.logs_dir.glob(LOG_PATTERN) if p.stat().st_mtime < cutoff]
    for path in old:
        path.unlink(missing_ok=True)
    return old


class RunLog:
    """Timestamped lines to the run's log file, and to the caller's output.

    The caller's copy is stamped too unless it is a terminal, where a person
    is watching (systemd's journal and redirected output keep the times).
    A line the file cannot take (its disk is full: the cache's own disk, as
    often as not) is never a traceback: the run goes on, the failure is said
    once on the output (stderr without one), and the file says how many
    lines it missed once it takes lines again.
    """

    def __init__(self, path: Path, echo=None, stamp_echo: bool = False):
        self.path = path
        self.echo = echo
        self.stamp_echo = stamp_echo
        self.missed = 0
        self.cut = False  # the last write stopped within a line
        self.fd: int | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Unbuffered appends: a write that fails leaves nothing half-kept to repeat later.
            # 0600 whatever the umask: a log may quote an upstream's error text.
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(self.fd, 0o600)
        except OSError as err:
            self._failed(err)

    def _failed(self, err: OSError) -> None:
        if not self.missed:
            warning = f"warning: cannot write the log {self.path}: {err.strerror or err}"
            (self.echo or (lambda line: print(line, file=sys.stderr)))(warning)
        self.missed += 1

    def _write_all(self, data: bytes) -> None:
        while data:  # a nearly full disk takes part of a write without an error
            written = os.write(self.fd, data)
            self.cut = True
            data = data[written:]
        self.cut = False

    def _write(self, line: str) -> None:
        if self.fd is None:
            self.missed += 1
            return
        try:
            if self.missed:
                # A line cut short by the full disk is ended first, so every line starts with its time.
                self._write_all(f"{chr(10) if self.cut else ''}{line[:24]} ({self.missed} line(s) "
                                "could not be written here)\n".encode())
                self.missed = 0
            self._write_all(f"{line}\n".encode())
        except OSError as err:
            self._failed(err)

    def __call__(self, message: str) -> None:
        stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S%z")
        self._write(f"{stamp} {message}")
        if self.echo:
            self.echo(f"{stamp} {message}" if self.stamp_echo else message)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
