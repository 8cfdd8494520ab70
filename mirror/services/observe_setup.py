"""Setting the metrics and status page service up and taking it down on hosts without
systemd (with systemd it is docker-mirror-observe.service, installed with the other units).

It runs detached, as the keeper does, its output in `observe/serve.log`; its
pid is in the lock it holds (`observe/.serve.lock`), which is how it is found
again, by `make docker-mirror-status` and by `make docker-mirror-remove`.
"""

from __future__ import annotations

import time

from ..config.kconfig import CONFIRM_AFTER
from ..model.settings import Settings
from ..host import locks, ports, systemd
from . import inputs, observe
from .observe_serve import serve_lock

STOP_TIMEOUT = 10.0   # seconds for the service to let go of its lock after SIGTERM


def running(settings: Settings) -> int | None:
    return locks.holder(serve_lock(settings))


def start(settings: Settings, command: list[str], cwd) -> str:
    """Start the service in the background unless one runs with these inputs (settings,
    the htpasswd file, the certificate: services.inputs); says which. One that started
    with others is restarted: it read them once, and would go on serving by them."""
    pid = running(settings)
    restarted = ""
    if pid and inputs.stale(serve_lock(settings), settings):
        stop(settings)
        restarted = f" (restarted: its settings or files changed; pid {pid} stopped)"
    elif pid:
        return f"status page running (pid {pid}) on {settings.observe.url}/"
    # A page whose mirror moved to this directory stops at its next sample (observe_serve.unwanted)
    # and frees the port: wait for that rather than fail to bind.
    deadline = time.monotonic() + settings.observe.interval + 2 * CONFIRM_AFTER + 1
    while not ports.port_is_free(settings.observe.address, settings.observe.port) and time.monotonic() < deadline:
        time.sleep(0.2)
    log = observe.observe_dir(settings) / "serve.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    pid = systemd.start_detached(command, cwd=cwd, output=log)
    return (f"status page started in the background (pid {pid}) on {settings.observe.url}/{restarted}; "
            f"its log: {log}")


def stop(settings: Settings) -> int | None:
    """Stop the background service; its pid, or None when none ran."""
    return locks.stop_holder(serve_lock(settings), "the status page service", STOP_TIMEOUT)