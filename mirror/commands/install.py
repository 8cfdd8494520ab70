"""`make docker-mirror`: bring the mirror up on this host, and keep it up.

Idempotent: every step compares what is there with what the settings ask
for and changes only the difference, so a second run with nothing changed
restarts nothing and returns in about a second.

start_mirrors() is the path every entry point shares (setup, the boot
unit, each refresh): layout, registry image, upstream modes, containers.
docker_mirror() adds what only setup does: NFS, systemd units, the first
refresh.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .. import render
from ..config.kconfig import ROOT
from ..config.settings import Settings
from ..engine import containers
from ..engine.registry_image import ensure_registry_image
from ..errors import MirrorError
from ..host import layout as host_layout
from ..host import nfs, runlog, systemd
from ..host.layout import Layout
from ..model.modes import OFFLINE, choose_mode
from ..net.registry_api import upstream_answers


@dataclass
class Report:
    actions: dict[str, str] = field(default_factory=dict)   # upstream key -> what was done
    modes: dict[str, str] = field(default_factory=dict)
    refresh: str = ""                                        # how the first refresh was started


def upstream_modes(settings: Settings) -> dict[str, str]:
    """Each upstream's mode; the upstreams are asked all at once (each bounded)."""
    if not settings.pull_through:
        return {u.key: choose_mode(False, True) for u in settings.upstreams}
    with ThreadPoolExecutor(max_workers=len(settings.upstreams)) as pool:
        answers = pool.map(lambda u: upstream_answers(u.remote_url), settings.upstreams)
        return {u.key: choose_mode(True, up) for u, up in zip(settings.upstreams, answers)}


def start_mirrors(settings: Settings, client, log=print) -> Report:
    layout = Layout.of(settings)
    host_layout.ensure(layout, settings, render.render("manifest.txt.j2", entries=[]))
    image = ensure_registry_image(client, settings.registry_image, log=log)
    modes = upstream_modes(settings)
    for key, mode in modes.items():
        if mode == OFFLINE:
            log(f"{settings.upstream(key).registry}: upstream {settings.upstream(key).remote_url} "
                "does not answer: serving the cache read-only until it does")
    specs = containers.plan(settings, layout, image, modes, host_layout.http_secret(layout))
    for name in containers.remove_unconfigured(client, settings):
        log(f"removed {name}: its upstream is no longer configured")
    return Report(actions=containers.apply(client, image, specs, log=log), modes=modes)


def refresh_command(settings: Settings) -> list[str]:
    return [sys.executable, "-m", "mirror", "--config", os.path.abspath(settings.config_path), "refresh"]


def install_units(settings: Settings) -> bool:
    """Write the systemd units and enable them; True when any unit changed."""
    units = render.unit_files(settings, python=sys.executable, workdir=str(ROOT),
                              config_path=os.path.abspath(settings.config_path))
    changed = systemd.write_units(units)
    if changed:
        systemd.enable_units()
    return changed


def export_nfs(settings: Settings, log=print, exports_file=nfs.EXPORTS_FILE) -> None:
    nfs.export(render.nfs_exports(settings), f"{settings.path} read-only to {' '.join(settings.nfs_clients)}",
               log=log, exports_file=exports_file)


def start_first_refresh(settings: Settings, layout: Layout, on_systemd: bool) -> str:
    """Start a refresh without waiting for it; returns how to follow it."""
    if on_systemd:
        systemd.start_refresh()
        return f"first refresh started by systemd; follow it with: journalctl -u {systemd.REFRESH_UNIT} -f"
    log_path = runlog.new_log_path(layout)
    pid = systemd.start_detached([*refresh_command(settings), "--log", str(log_path)], cwd=ROOT)
    return f"first refresh started in the background (pid {pid}); follow it with: tail -f {log_path}"


def docker_mirror(settings: Settings, client, *, boot: bool = False, log=print) -> Report:
    if not settings.enabled or not settings.install:
        raise MirrorError("the Docker mirror is not to be installed here (ENABLE_DOCKER_MIRROR / "
                          "INSTALL_DOCKER_MIRROR are off): nothing to do; 'make menuconfig' to change")
    report = start_mirrors(settings, client, log=log)
    layout = Layout.of(settings)
    if settings.nfs_export:
        export_nfs(settings, log=log)
    changed = any(action != "unchanged" for action in report.actions.values())
    if not settings.refresh or boot:
        return report
    on_systemd = systemd.systemd_is_pid1()
    if on_systemd:
        changed = install_units(settings) or changed
    if changed or not layout.last_refresh.exists():
        report.refresh = start_first_refresh(settings, layout, on_systemd)
        log(report.refresh)
    return report
