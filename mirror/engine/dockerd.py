"""Reloading dockerd after its daemon.json changed, and checking that it took.

dockerd keeps its old settings (and only logs) when it rejects daemon.json,
so the engine's own `info` is the only proof a change took.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from ..errors import DockerReloadError
from ..host import proc, systemd
from ..host.client_files import ClientPaths
from .client import docker_errors

RELOAD_TIMEOUT = 15.0
DOCKERD_LOG = "/var/log/dockerd.log"  # where scripts/start-docker-engine.sh sends it


def active_mirrors(client) -> set[str]:
    """The registry mirrors dockerd uses now, as its own info says."""
    with docker_errors("ask the Docker engine for its info"):
        info = client.info()
    return {m.rstrip("/") for m in info.get("RegistryConfig", {}).get("Mirrors") or []}


def reload_docker(paths: ClientPaths, connect, *, present=(), absent=(),
                  timeout: float = RELOAD_TIMEOUT) -> str:
    """Reload dockerd and wait until its info lists `present` mirrors and none of `absent`.

    Returns what happened, for the report. dockerd keeps its old settings
    (and only logs) when it rejects daemon.json, so the engine's own answer
    is the only proof the change took.
    """
    pid = proc.dockerd_pid(paths.docker_pid)
    if pid is None:
        return f"dockerd is not running ({paths.docker_pid}): it reads {paths.daemon_json} when it starts"
    if systemd.systemd_is_pid1():
        try:
            done = subprocess.run(["systemctl", "reload", "docker"], capture_output=True, text=True,
                                  timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise DockerReloadError(f"systemctl reload docker failed: {err}") from None
        if done.returncode != 0:
            raise DockerReloadError(f"systemctl reload docker failed: {done.stderr.strip()}")
        how = "systemctl reload docker"
    else:
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as err:
            raise DockerReloadError(f"cannot signal dockerd (pid {pid}): {err.strerror}") from None
        how = f"SIGHUP to dockerd (pid {pid})"
    client = connect()
    wanted_on = {m.rstrip("/") for m in present}
    wanted_off = {m.rstrip("/") for m in absent}
    deadline = time.monotonic() + timeout
    while True:
        active = active_mirrors(client)
        if wanted_on <= active and not wanted_off & active:
            return f"dockerd reloaded ({how}); its registry mirrors now: {sorted(active) or 'none'}"
        if time.monotonic() >= deadline:
            log = "journalctl -u docker" if systemd.systemd_is_pid1() else DOCKERD_LOG
            raise DockerReloadError(
                f"dockerd did not take the registry settings of {paths.daemon_json} within "
                f"{timeout:.0f}s (its mirrors: {sorted(active) or 'none'}); it keeps its old "
                f"settings when it rejects the file: see {log}")
        time.sleep(0.2)
