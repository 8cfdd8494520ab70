"""`make docker-mirror`: bring the mirror up on this host, and keep it up.

Idempotent: every step compares what is there with what the settings ask
for and changes only the difference, so a second run with nothing changed
restarts nothing and returns in about a second.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import layout as L
from . import probes, registry, registry_image, render, runlog
from .errors import MirrorError
from .fsutil import atomic_write
from .kconfig import ROOT
from .settings import Settings

SYSTEMD_DIR = Path("/etc/systemd/system")
EXPORTS_FILE = Path("/etc/exports.d/docker-mirror.exports")
UNITS = ("docker-mirror.service", "docker-mirror-update.service", "docker-mirror-update.timer")


@dataclass
class Report:
    actions: dict[str, str] = field(default_factory=dict)   # upstream key -> what was done
    modes: dict[str, str] = field(default_factory=dict)
    refresh: str = ""                                        # how the first refresh was started


def ensure_layout(layout: L.Layout, settings: Settings) -> None:
    for directory in (layout.root, layout.config_dir, layout.images_dir, layout.archives_dir,
                      layout.logs_dir, layout.registry_dir):
        directory.mkdir(parents=True, exist_ok=True)
    if settings.storage.backend == "filesystem":
        for upstream in settings.upstreams:
            layout.storage_dir(upstream).mkdir(parents=True, exist_ok=True)
    if not layout.manifest.exists():
        atomic_write(layout.manifest, render.render("manifest.txt.j2", entries=[]))


def http_secret(layout: L.Layout) -> str:
    """Generated once and kept: a new secret per start would break uploads in flight."""
    try:
        return layout.http_secret.read_text().strip()
    except FileNotFoundError:
        secret = secrets.token_urlsafe(32)
        atomic_write(layout.http_secret, secret + "\n", mode=0o600)
        return secret


def upstream_modes(settings: Settings) -> dict[str, str]:
    if not settings.pull_through:
        return {u.key: registry.choose_mode(settings, True) for u in settings.upstreams}
    with ThreadPoolExecutor(max_workers=len(settings.upstreams)) as pool:
        answers = pool.map(lambda u: registry.upstream_answers(u.remote_url), settings.upstreams)
        return {u.key: registry.choose_mode(settings, up) for u, up in zip(settings.upstreams, answers)}


def write_configs(specs: list[registry.MirrorSpec]) -> None:
    for spec in specs:
        path = Path(spec.config_path)
        # Always 0600: every config holds the http secret, some an upstream password.
        if not path.exists() or path.read_text() != spec.config_text:
            atomic_write(path, spec.config_text, mode=0o600)


def start_mirrors(settings: Settings, client, log=print) -> Report:
    layout = L.Layout.of(settings)
    ensure_layout(layout, settings)
    image = registry_image.ensure_registry_image(client, settings.registry_image, log=log)
    modes = upstream_modes(settings)
    for key, mode in modes.items():
        if mode == L.OFFLINE:
            log(f"{settings.upstream(key).registry}: upstream {settings.upstream(key).remote_url} "
                "does not answer: serving the cache read-only until it does")
    specs = registry.plan(settings, layout, image, modes, http_secret(layout))
    write_configs(specs)
    for name in registry.remove_unconfigured(client, settings):
        log(f"removed {name}: its upstream is no longer configured")
    actions = registry.apply(client, image, specs, settings.bind_address,
                             tls=bool(settings.tls_certificate), log=log)
    return Report(actions=actions, modes=modes)


def refresh_command(settings: Settings) -> list[str]:
    return [sys.executable, "-m", "mirror", "--config", os.path.abspath(settings.config_path), "refresh"]


def install_units(settings: Settings) -> bool:
    """Write the systemd units and enable them; True when any unit changed."""
    context = dict(python=sys.executable, workdir=str(ROOT),
                   config_path=os.path.abspath(settings.config_path))
    units = {"docker-mirror.service": render.boot_service(settings, **context),
             "docker-mirror-update.service": render.refresh_service(settings, **context),
             "docker-mirror-update.timer": render.refresh_timer(settings)}
    changed = False
    for name, text in units.items():
        path = SYSTEMD_DIR / name
        if not path.exists() or path.read_text() != text:
            atomic_write(path, text)
            changed = True
    if changed:
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "enable", "--now", "docker-mirror-update.timer"],
                       check=True, capture_output=True)
        subprocess.run(["systemctl", "enable", "docker-mirror.service"], check=True,
                       capture_output=True)
    return changed


def start_background_refresh(settings: Settings, log_path: Path) -> int:
    """No systemd: start the first refresh detached, so setup returns at once."""
    with open(os.devnull, "rb") as devnull:
        process = subprocess.Popen([*refresh_command(settings), "--log", str(log_path)],
                                   cwd=ROOT, stdin=devnull, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
    return process.pid


def export_nfs(settings: Settings, log=print, exports_file: Path = EXPORTS_FILE) -> None:
    text = render.nfs_exports(settings)
    if exports_file.exists() and exports_file.read_text() == text:
        return
    atomic_write(exports_file, text)
    if shutil.which("exportfs"):
        subprocess.run(["exportfs", "-ra"], check=True)
        log(f"NFS: exported {settings.path} read-only to {' '.join(settings.nfs_clients)}")
    else:
        log(f"NFS: wrote {exports_file}, but exportfs is missing: install nfs-kernel-server "
            "(apt-get install nfs-kernel-server) and run 'exportfs -ra'")


def docker_mirror(settings: Settings, client, *, boot: bool = False, log=print) -> Report:
    if not settings.enabled or not settings.install:
        raise MirrorError("the Docker mirror is not to be installed here (ENABLE_DOCKER_MIRROR / "
                          "INSTALL_DOCKER_MIRROR are off): nothing to do; 'make menuconfig' to change")
    report = start_mirrors(settings, client, log=log)
    layout = L.Layout.of(settings)
    if settings.nfs_export:
        export_nfs(settings, log=log)
    changed = any(action != "unchanged" for action in report.actions.values())
    if not settings.refresh or boot:
        return report
    systemd = probes.systemd_is_pid1()
    if systemd:
        changed = install_units(settings) or changed
    if changed or not layout.last_refresh.exists():
        if systemd:
            # --no-block: the first refresh may take long; setup returns now.
            subprocess.run(["systemctl", "start", "--no-block", "docker-mirror-update.service"],
                           check=True)
            report.refresh = ("first refresh started by systemd; follow it with: "
                              "journalctl -u docker-mirror-update.service -f")
        else:
            log_path = runlog.new_log_path(layout)
            pid = start_background_refresh(settings, log_path)
            report.refresh = (f"first refresh started in the background (pid {pid}); "
                              f"follow it with: tail -f {log_path}")
        log(report.refresh)
    return report
