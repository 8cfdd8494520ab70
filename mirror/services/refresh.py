"""The refresh run (timer, background start, `make docker-mirror-pull`).

One run at a time (a lock on the mirror directory), a log per run under
logs/, old logs pruned, each upstream's mode re-checked (a mirror that came
up offline returns to pull-through once its upstream answers), then the
images to keep warm are pulled through the mirror.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..model.settings import Settings
from ..errors import MirrorError, RefreshBusy
from ..host import diskspace, locks
from ..host.files import atomic_write
from ..host.layout import Layout
from ..host.runlog import RunLog, new_log_path, prune_logs
from . import install, lifecycle, restore


def exclusive(layout: Layout, wait: bool, say=print):
    return locks.held(
        layout.refresh_lock, wait=wait,
        on_wait=lambda: say(f"another refresh is running; waiting for it (lock {layout.refresh_lock})"),
        busy=lambda: RefreshBusy(f"another refresh is running (lock {layout.refresh_lock}); "
                                 "wait for it, or run again without --no-wait"))


def run(settings: Settings, client, *, log_path: Path | None = None, wait: bool = True,
        echo=print, warm=None) -> int:
    """One refresh; returns the exit code (non-zero when anything failed).

    `warm(settings, log, client) -> list of failed images` pulls the images
    to keep warm; None skips that step.
    """
    install.require_set_up(settings)
    layout = Layout.of(settings)
    with exclusive(layout, wait, say=echo):
        layout.logs_dir.mkdir(parents=True, exist_ok=True)
        log = RunLog(log_path or new_log_path(layout), echo=echo, stamp_echo=not sys.stdout.isatty())
        started = datetime.now(timezone.utc)
        failed: list[str] = []
        try:
            for old in prune_logs(layout, settings.log_retention_days):
                log(f"removed old log {old.name}")
            # A blip of an upstream is no reason to re-create a mirror that serves.
            report = install.start_mirrors(settings, client, log=log, keep_serving=True)
            for key, mode in report.modes.items():
                log(f"{settings.upstream(key).registry}: {mode}"
                    + (" (its upstream does not answer; the mirror goes on serving its cache)"
                       if key in report.kept_serving else ""))
            if warm is not None:
                failed = warm(settings, log, client)
        except MirrorError as err:
            log(f"error: {err}")
            failed = failed or ["(setup)"]
        result = "failed" if failed else "ok"
        record = {"started": started.isoformat(timespec="seconds"),
                  "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "result": result, "log": str(log.path), "failed": failed}
        if any(f.endswith(diskspace.NOTE) for f in failed):
            # Said as such: a blob that stopped growing would otherwise read as an upstream gone.
            record["error"] = (f"disk full: the cache's file system ran out of room "
                               f"({diskspace.space(layout.root) or layout.root} now)")
            log(f"error: {record['error']}")
        log(f"refresh {result}" + (f": {', '.join(failed)}" if failed else ""))
        try:
            atomic_write(layout.last_refresh, json.dumps(record, indent=2) + "\n", mode=0o600)
        except OSError as err:
            log(f"error: cannot write {layout.last_refresh}: {err.strerror or err}")
        log.close()
    return 1 if failed else 0


def collect_now(settings: Settings, client, *, dry_run: bool, wait: bool = True, say=print):
    """`make docker-mirror-gc`: a collection outside a refresh, never beside one (the refresh lock)."""
    install.require_set_up(settings)
    with exclusive(Layout.of(settings), wait, say=say):
        return lifecycle.collect(settings, client, dry_run=dry_run, log=say)


def restore_now(settings: Settings, client, paths=None) -> list[str]:
    """`make docker-mirror-restore`: never beside a refresh or a collection, whose sweep
    could delete blobs a restore has pushed but not yet linked to a manifest."""
    install.require_set_up(settings)
    with exclusive(Layout.of(settings), wait=True):
        return restore.restore(settings, client, paths=paths)
