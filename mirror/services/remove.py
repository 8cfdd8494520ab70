"""`make docker-mirror-remove`: a clean way out.

Takes down what `make docker-mirror` set up for this configuration (the
keeper first, or it would bring the mirrors straight back; then the systemd
units, the registry containers, the NFS export) and keeps the cache. With
`purge`, the mirror directory goes too, once the user said yes (on a
terminal) or asked for it without one (PURGE=1).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Callable

from .. import render
from ..model.settings import Settings
from ..engine import containers, replicas
from ..errors import MirrorError, PurgeRefused
from ..host import locks, nfs, redis_secret, storage, systemd
from ..host.layout import Layout
from . import observe_setup, ownership

KEEPER_STOP_TIMEOUT = 15.0   # seconds for a keeper to let go of its lock after SIGTERM


def stop_keeper(layout: Layout) -> int | None:
    """Stop the background keeper (hosts without systemd); its pid, or None when none ran."""
    return locks.stop_holder(layout.keeper_lock, "the keeper", KEEPER_STOP_TIMEOUT)


def _looks_like_a_mirror(layout: Layout) -> bool:
    return (layout.config_dir / "http-secret").exists() or layout.registry_dir.is_dir()


def purge(settings: Settings, layout: Layout, confirm: Callable[[str], bool], log=print) -> bool:
    """Delete the mirror directory (and storage kept elsewhere); False when the user said no."""
    root = layout.root
    if not root.exists():
        log(f"{root} is already gone")
        return True
    if root == Path(root.anchor) or not _looks_like_a_mirror(layout):
        raise PurgeRefused(f"{root} (DOCKER_MIRROR_PATH) does not look like a mirror directory "
                           "(no config/http-secret, no registry/): not deleting it")
    outside = [layout.storage_dir(u) for u in settings.upstreams
               if settings.storage.backend == "filesystem" and root not in layout.storage_dir(u).parents]
    size = render.human_size(sum(storage.disk_usage(d) for d in (root, *outside) if d.exists()))
    if not confirm(f"Delete {root}{' and ' + ', '.join(map(str, outside)) if outside else ''}, "
                   f"with everything cached ({size})?"):
        log("nothing deleted")
        return False
    for directory in (*outside, root):
        if directory.exists():
            shutil.rmtree(directory)
            log(f"deleted {directory}")
    return True


def remove(settings: Settings, client, *, purge_cache: bool = False,
           confirm: Callable[[str], bool] = lambda _: True, log=print) -> bool:
    """Take down this configuration's mirror; True when anything was there to take down."""
    layout = Layout.of(settings)
    if purge_cache and not settings.enabled:
        raise PurgeRefused(f"the mirror is switched off in {settings.config_path}, so it no longer says "
                           "where the cache is (Kconfig drops DOCKER_MIRROR_PATH with it): switch it on "
                           "to purge, or delete the directory yourself")
    # A refresh running meanwhile would bring containers (or, purged, directories) back.
    waiting = locks.held(layout.refresh_lock, on_wait=lambda: log("waiting for the running refresh to end")) \
        if settings.enabled and layout.root.is_dir() else contextlib.nullcontext()
    shared = _shared(settings, client)
    if shared:
        # Its keeper lock, status page, exports file and directory are that checkout's too.
        log(f"this checkout uses the mirror {shared} set up (the same settings): nothing of it is "
            f"taken down{' or deleted' if purge_cache else ''}; 'make docker-mirror-remove' with that .config does")
        return True
    with waiting:
        return _remove(settings, client, layout, purge_cache, confirm, log)


def _shared(settings: Settings, client) -> str | None:
    """The other .config whose same mirror this one uses (services.ownership), if so."""
    if client is None or not settings.enabled:
        return None
    try:
        shared = ownership.resolve(settings, client, log=lambda _: None)
    except MirrorError:
        return None   # another mirror, with other settings: only what is this .config's goes
    return shared.owner if shared else None


def _remove(settings: Settings, client, layout: Layout, purge_cache: bool, confirm, log) -> bool:
    found = False
    if systemd.systemd_is_pid1():
        units = systemd.units_of(render.unit_marker(settings))
        systemd.remove_units(units)
        for name in units:
            log(f"stopped, disabled and deleted {systemd.SYSTEMD_DIR / name}")
        found = bool(units)
    # Switched off, .config names Kconfig's default directory, maybe another mirror's:
    # the keeper then stops by itself when its containers go (it reads .config again).
    pid = stop_keeper(layout) if settings.enabled else None
    if pid:
        log(f"stopped the keeper (pid {pid})")
        found = True
    pid = observe_setup.stop(settings) if settings.enabled else None
    if pid:
        log(f"stopped the status page service (pid {pid})")
        found = True
    if client is not None:
        with locks.held(layout.setup_lock) if layout.root.exists() else contextlib.nullcontext():
            for name in containers.remove_all(client, settings) + replicas.remove(client, settings):
                log(f"removed container {name}")
                found = True
            # Redis is gone with its cache: its password goes too (a new one with the next
            # setup). Not without an engine: a Redis left running still reads its redis.conf.
            for path in redis_secret.forget(layout) if settings.enabled else []:
                log(f"deleted {path} (it holds the replicas' Redis password)")
    if settings.enabled and nfs.unexport(render.exports_path(settings.path), settings.path, log=log,
                                         exports_file=nfs.EXPORTS_DIR / settings.instance.exports_file):
        found = True
    if layout.clients_state.exists():
        log("Docker and containerd on this host still name the mirror (they fall back to the "
            "registries when it does not answer): 'make docker-mirror-clients-undo' takes that back")
    if purge_cache:
        purge(settings, layout, confirm, log=log)
    elif found and settings.enabled and layout.root.exists():
        log(f"the cache stays in {layout.root}")
    return found
