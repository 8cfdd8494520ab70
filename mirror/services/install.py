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

import contextlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from .. import render
from ..config import secrets
from ..config.kconfig import ROOT
from ..model.settings import Settings
from ..engine import containers, replicas
from ..engine import storage_drivers
from ..engine.registry_image import ensure_registry_image
from ..errors import DockerError, MirrorStartError, MirrorSwitchedOff
from ..host import layout as host_layout
from ..host import credential, locks, nfs, redis_secret, runlog, systemd, tls
from ..host.layout import Layout
from ..model.modes import OFFLINE, PULL_THROUGH, choose_mode
from ..net import azure_blob
from ..net.probes import answers
from . import inputs, lifecycle, observe_serve, observe_setup, remove
from ..net.registry_api import upstream_answers
from . import ownership


KEEPER_STOP_TIMEOUT = 10.0   # seconds for a background keeper to let go of its lock after SIGTERM


@dataclass
class Report:
    actions: dict[str, str] = field(default_factory=dict)   # upstream key -> what was done
    modes: dict[str, str] = field(default_factory=dict)
    refresh: str = ""                                        # how the first refresh was started
    keeper: str = ""                                         # how the keeper runs (without systemd)
    kept_serving: list[str] = field(default_factory=list)    # pull-through although the upstream did not answer
    shared: str = ""          # the other .config whose same mirror this one uses as it is (services.ownership)


def upstream_modes(settings: Settings) -> dict[str, str]:
    """Each upstream's mode; the upstreams are asked all at once (each bounded)."""
    if not settings.pull_through:
        return {u.key: choose_mode(False, True) for u in settings.upstreams}
    with ThreadPoolExecutor(max_workers=len(settings.upstreams)) as pool:
        answers = pool.map(lambda u: upstream_answers(u.remote_url), settings.upstreams)
        return {u.key: choose_mode(True, up) for u, up in zip(settings.upstreams, answers)}


def require_set_up(settings: Settings) -> None:
    """Refuse to act on a switched-off mirror: .config then names Kconfig's default
    directory, prefix and port, which may be another mirror's."""
    if not settings.enabled or not settings.install:
        raise MirrorSwitchedOff(f"the Docker mirror is switched off in {settings.config_path} "
                                "(ENABLE_DOCKER_MIRROR / INSTALL_DOCKER_MIRROR): nothing to do; "
                                "'make menuconfig' to switch it on")


def keep_serving_proxies(settings: Settings, client, modes: dict[str, str]) -> dict[str, str]:
    """The offline modes to leave as pull-through: mirrors that answer in that mode.

    distribution 2.8 serves its cache when the upstream goes away after it
    started; only a start with the upstream away fails. So a blip of the
    upstream is no reason to re-create a mirror that serves.
    """
    kept = {}
    for upstream in settings.upstreams:
        if modes[upstream.key] != OFFLINE:
            continue
        found = containers.mirror_container(client, settings, upstream)
        if found.state == "running" and found.mode == PULL_THROUGH and answers(upstream.endpoint):
            kept[upstream.key] = PULL_THROUGH
    return kept


_UNRESOLVED = object()


def start_mirrors(settings: Settings, client, log=print, keep_serving: bool = False,
                  guard: Callable[[], None] | None = None,
                  owner: ownership.Shared | None | object = _UNRESOLVED) -> Report:
    """Make the mirror containers match the settings and each upstream's state.

    `keep_serving` (the keeper, the refresh): a pull-through mirror that still
    answers stays as it is when its upstream does not answer (keep_serving_proxies).
    Containers of these names made for another .config are shared, taken over or
    refused before anything is touched (services.ownership).
    `guard` (the keeper): raises when what it keeps is gone, before anything is made
    and again right before the containers are touched.
    `owner`: ownership.resolve()'s answer when the caller asked it already (docker_mirror).
    """
    if owner is _UNRESOLVED:
        owner = ownership.resolve(settings, client, log=log)
    if owner is not None:
        return Report(actions={u.key: "shared" for u in settings.upstreams}, shared=owner.owner,
                      modes={u.key: containers.mirror_container(client, settings, u).mode or "unknown"
                             for u in settings.upstreams})
    if guard is not None:
        guard()
    layout = Layout.of(settings)
    host_layout.ensure(layout, settings, render.render("manifest.txt.j2", entries=[]))
    credential.ensure(settings, layout)
    with locks.held(layout.setup_lock):
        # Generated TLS: the CA once, the server certificate when its names or date call for it.
        for line in tls.ensure(settings):
            log(line)
        image = ensure_registry_image(client, settings.registry_image, log=log)
        # Debian's registry has no azure driver: refuse here, not in a crash loop.
        storage_drivers.require(client, image, settings.storage.backend)
        modes = upstream_modes(settings)
        kept = keep_serving_proxies(settings, client, modes) if keep_serving else {}
        modes = {**modes, **kept}
        for key, mode in modes.items():
            if mode == OFFLINE:
                log(f"{settings.upstream(key).registry}: upstream {settings.upstream(key).display_url} "
                    "does not answer: serving the cache read-only until it does")
        if settings.replicas.enabled and redis_secret.unusable(layout):
            log(f"warning: {redis_secret.secret_path(layout)} holds no usable password (32 to 128 of "
                "A-Z a-z 0-9 _ -): a new one is made, and Redis and the replicas are re-created with it")
        specs = containers.plan(settings, layout, image, modes, host_layout.http_secret(layout))
        try:
            # A re-created container's log goes with it: read the pulls it recorded first
            # (before the single mirror and replicas replace each other, too).
            lifecycle.ingest(settings, client)
        except DockerError as err:
            log(f"warning: last use not recorded: {err}")
        if guard is not None:
            guard()
        for name in containers.remove_unconfigured(client, settings):
            log(f"removed {name}: its upstream is no longer configured")
        if settings.replicas.enabled:
            # Redis first: the replicas start with their blob-descriptor cache there.
            shared = replicas.apply(client, settings, layout, roles=(replicas.REDIS,), log=log)
        else:
            # HAProxy would hold the mirrors' ports: gone before a single mirror starts.
            shared = {name: "removed" for name in replicas.remove(client, settings)}
            for name in shared:
                log(f"removed {name}: DOCKER_MIRROR_REPLICAS is 1")
        try:
            actions = containers.apply(client, image, specs, log=log)
        except MirrorStartError as err:
            # azure: the registry retries a store it cannot reach for minutes, saying nothing.
            why = azure_blob.diagnose(settings.storage) if settings.storage.backend == "azure" else ""
            raise (MirrorStartError(f"{err}\n{why}") if why else err) from None
        if settings.replicas.enabled:
            # HAProxy last: it takes the mirrors' own addresses, in front of replicas that answer.
            shared.update(replicas.apply(client, settings, layout, roles=(replicas.LB,), log=log))
        return Report(actions={**actions, **shared}, modes=modes, kept_serving=list(kept))


def mirror_command(settings: Settings, verb: str, mirror_args=()) -> list[str]:
    """How a unit or a detached process runs `verb` on this mirror (`mirror_args`: --path, ...)."""
    return [sys.executable, "-m", "mirror", "--config", os.path.abspath(settings.config_path),
            verb, *mirror_args]


def unit_names(settings: Settings) -> list[str]:
    """The unit files install_units() writes for `settings`."""
    names = settings.instance
    return [names.keeper_unit, *([names.refresh_unit, names.refresh_timer] if settings.refresh else []),
            *([names.observe_unit] if settings.observe.enabled else [])]


def install_units(settings: Settings, mirror_args=()) -> bool:
    """Write, enable and start the keeper (and the refresh timer); True when any unit changed."""
    units = render.unit_files(settings, python=sys.executable, workdir=str(ROOT),
                              config_path=os.path.abspath(settings.config_path), mirror_args=mirror_args)
    changed = systemd.write_units(units, render.unit_marker(settings))
    systemd.remove_units([name for name in systemd.units_of(render.unit_marker(settings)) if name not in units])
    names = settings.instance
    enable = [name for name in units if name != names.refresh_unit]   # the timer starts that one
    # Without the keeper, the keeper's unit runs once at boot: this run just did its work.
    start = [name for name in enable if settings.keeper or name != names.keeper_unit]
    systemd.start_units(enable, start, changed)
    # A unit whose file is unchanged may still run with what it read at its start: a
    # .config, an htpasswd file or a certificate changed since (services.inputs).
    layout = Layout.of(settings)
    readers = {names.keeper_unit: layout.keeper_lock, names.observe_unit: observe_serve.serve_lock(settings)}
    stale = [name for name in start if name not in changed and name in readers
             and inputs.stale(readers[name], settings)]
    for name in stale:
        with _keeper_idle(layout, name == names.keeper_unit):
            systemd.systemctl("restart", name)
    return bool(changed)


def _keeper_idle(layout: Layout, keeper: bool):
    """Around stopping the keeper: the setup lock, so that it is not cut off halfway
    through re-creating a container (its checks take that lock too)."""
    return locks.held(layout.setup_lock) if keeper else contextlib.nullcontext()


def start_keeper(settings: Settings, layout: Layout, mirror_args=()) -> str:
    """No systemd: start the keeper in the background unless one runs with these inputs
    (services.inputs: it would go on with the code and command line it started with);
    says which."""
    running = locks.holder(layout.keeper_lock)
    restarted = ""
    if running and inputs.stale(layout.keeper_lock, settings):
        with _keeper_idle(layout, True):
            locks.stop_holder(layout.keeper_lock, "the keeper", KEEPER_STOP_TIMEOUT)
        restarted = f" (restarted: its settings or files changed; pid {running} stopped)"
    elif running is not None:
        return f"keeper running (pid {running})"
    pid = systemd.start_detached(mirror_command(settings, "keeper", mirror_args), cwd=ROOT,
                                 output=layout.keeper_log)
    return f"keeper started in the background (pid {pid}){restarted}; its log: {layout.keeper_log}"


def stop_keeper(settings: Settings, layout: Layout) -> int | None:
    """No systemd, keeper switched off: stop a background keeper now, rather than at its
    next check; its pid, or None when none ran."""
    with _keeper_idle(layout, True):
        return locks.stop_holder(layout.keeper_lock, "the keeper", KEEPER_STOP_TIMEOUT)


def export_nfs(settings: Settings, log=print, exports_dir=nfs.EXPORTS_DIR) -> None:
    nfs.export(render.nfs_exports(settings), f"{settings.path} read-only to {' '.join(settings.nfs_clients)}",
               log=log, exports_file=exports_dir / settings.instance.exports_file)


def start_first_refresh(settings: Settings, layout: Layout, on_systemd: bool, mirror_args=()) -> str:
    """Start a refresh without waiting for it; returns how to follow it."""
    if on_systemd:
        systemd.start_refresh(settings.instance.refresh_unit)
        return f"first refresh started by systemd; follow it with: journalctl -u {settings.instance.refresh_unit} -f"
    log_path = runlog.new_log_path(layout)
    pid = systemd.start_detached([*mirror_command(settings, "refresh", mirror_args), "--log", str(log_path)],
                                 cwd=ROOT)
    return f"first refresh started in the background (pid {pid}); follow it with: tail -f {log_path}"


def docker_mirror(settings: Settings, client, *, boot: bool = False, log=print, mirror_args=()) -> Report:
    """Set the mirror up, or (switched off in .config) take down what an earlier run set up.

    `boot`: the mirrors alone, as the keeper's checks do: no units, no keeper, no refresh.
    """
    # .config and .config.old 0600 when they hold a secret, whoever wrote them (an editor,
    # kconfiglib's own scripts run by hand): the mode is put right at every setup too.
    secrets.protect(settings.config_path)
    if not settings.enabled or not settings.install:
        removed = remove.remove(settings, client, log=log)
        log(f"the Docker mirror is switched off in {settings.config_path} (ENABLE_DOCKER_MIRROR / "
            "INSTALL_DOCKER_MIRROR): " + ("took down what was set up; the cache stays where it was"
                                          if removed else "nothing is set up here"))
        return Report()
    # Asked once: it lists the engine's containers and may load another .config.
    owner = ownership.resolve(settings, client, log=log)
    if not boot and systemd.systemd_is_pid1() and owner is None:
        # Another mirror's unit under one of this one's names: refused before anything is touched.
        systemd.check_owner(unit_names(settings), render.unit_marker(settings))
    report = start_mirrors(settings, client, log=log, owner=owner)
    if report.shared:
        log(f"the mirror of prefix {settings.container_prefix} was set up by {report.shared} with the "
            "same settings: this checkout uses it as it is (nothing changed; that checkout's keeper, "
            "units and refresh keep it)")
        return report
    if boot:
        return report
    layout = Layout.of(settings)
    if settings.nfs_export:
        export_nfs(settings, log=log)
    changed = any(action != "unchanged" for action in report.actions.values())
    on_systemd = systemd.systemd_is_pid1()
    if on_systemd:
        changed = install_units(settings, mirror_args) or changed
    elif settings.keeper:
        report.keeper = start_keeper(settings, layout, mirror_args)
        if not report.keeper.startswith("keeper running"):
            log(report.keeper)
    elif stop_keeper(settings, layout):
        log("stopped the keeper (DOCKER_MIRROR_KEEPER is off)")
    if not on_systemd and settings.observe.enabled:
        said = observe_setup.start(settings, mirror_command(settings, "observe", mirror_args), ROOT)
        if not said.startswith("status page running"):
            log(said)
    elif not on_systemd and observe_setup.stop(settings):
        log("stopped the status page service (DOCKER_MIRROR_OBSERVE is off)")
    if settings.refresh and (changed or not layout.last_refresh.exists()):
        report.refresh = start_first_refresh(settings, layout, on_systemd, mirror_args)
        log(report.refresh)
    return report
