"""Refresh logs: logs/update-YYYYmmdd-HHMMSS.log, timestamped lines, pruned by age."""

from __future__ import annotations

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
    """

    def __init__(self, path: Path, echo=None, stamp_echo: bool = False):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a", encoding="utf-8")
        self.echo = echo
        self.stamp_echo = stamp_echo

    def __call__(self, message: str) -> None:
        stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S%z")
        self.file.write(f"{stamp} {message}\n")
        self.file.flush()
        if self.echo:
            self.echo(f"{stamp} {message}" if self.stamp_echo else message)

    def close(self) -> None:
        self.file.close()
