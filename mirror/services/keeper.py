"""`python3 -m mirror keeper`: keep the mirrors up with no person involved.

distribution 2.8 panics at start when its proxy upstream is unreachable, and
Docker's restart policy then restarts it forever. That happens whenever the
engine restarts while the upstream is away (a reboot offline, an upgrade of
the docker.io package), long after `make docker-mirror` ran. The keeper
re-runs the boot path (probe every upstream; a mirror whose upstream does not
answer serves its cache read-only) when the engine comes back, when one of
the mirror's containers dies, and every DOCKER_MIRROR_RECHECK_INTERVAL
seconds, which is also how an offline mirror returns to pull-through once its
upstream answers again.

It runs as PREFIX-keeper.service under systemd (Restart=on-failure), and as a
detached process started by `make docker-mirror` elsewhere. A lock on the
mirror directory keeps it to one keeper per mirror. The settings are loaded
again before every check, so an edited .config is followed, never fought.

A keeper only keeps what exists: when its .config, its mirror directory (the
one it started with: a directory made anew at that path is another) or the
checkout it runs from is gone (deleted without `make docker-mirror-remove`),
it stops, and never re-creates a container (that would bind-mount
directories that are no longer there): it asks before each check and again
inside it, right before containers are touched. "Gone" (or switched off) is
believed only when it is still so a moment later (CONFIRM_AFTER): every save
of kconfiglib's moves .config to .config.old and then writes it anew, and a
keeper that stopped in that window would stay stopped (exit 0: systemd's
Restart=on-failure leaves it). A mirror directory on a late mount is
systemd's to wait for (RequiresMountsFor= in the unit).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import traceback
from pathlib import Path
from typing import Callable

from ..config.kconfig import CONFIRM_AFTER, KCONFIG
from ..model.second_look import second_look
from ..model.settings import Settings
from ..engine import containers, events, replicas
from ..errors import DockerError, KeeperRunning, MirrorError, MirrorGone, NotConfiguredError, SettingsChanged
from ..host import locks
from ..host.layout import Layout
from . import inputs, install

ENGINE_POLL = 1.0        # seconds between attempts to reach a restarting engine
MIN_SPACING = 5.0        # seconds at least between two checks: a container that dies at
                         # once after each re-creation must not turn the keeper into a loop
SWITCHED_OFF = "the mirror is switched off in .config: the keeper stops"


def config_digest(settings: Settings) -> str | None:
    """The sha256 of .config's bytes now (None when it cannot be read)."""
    try:
        return hashlib.sha256(Path(settings.config_path).read_bytes()).hexdigest()
    except OSError:
        return None


def check(settings: Settings, client, log=print, root: Path | None = None,
          kept: tuple[int, int] | None = None, read_from: str | None = None) -> dict[str, str]:
    """One check: the boot path, logged when it changed something or kept a mirror serving.
    `root`: the mirror directory kept; raises MirrorGone, touching nothing more, when it,
    .config or the checkout is gone (mid-check too: a check takes seconds). `read_from`: the
    config_digest() the settings were read at; raises SettingsChanged, touching nothing, when
    .config changed since (a `make docker-mirror` the check waited for applied newer settings,
    which this check would undo)."""
    lines: list[str] = []

    def guard() -> None:
        missing = confirmed_gone(settings, root, kept) if root is not None else None
        if missing:
            raise MirrorGone(missing)
        if read_from is not None and config_digest(settings) != read_from:
            raise SettingsChanged(f"{settings.config_path} changed since the keeper read it")

    report = install.start_mirrors(settings, client, log=lines.append, keep_serving=True, guard=guard)
    if any(action != "unchanged" for action in report.actions.values()):
        for line in lines:
            log(line)
    for key in report.kept_serving:
        log(f"{settings.upstream(key).registry}: upstream {settings.upstream(key).display_url} does not "
            "answer; the running pull-through mirror goes on serving its cache")
    return report.actions


def identity(root: Path) -> tuple[int, int] | None:
    """Which directory `root` is (device, inode); None when there is none."""
    try:
        found = root.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def gone(settings: Settings, root: Path, kept: tuple[int, int] | None = None) -> str | None:
    """What of the keeper's own is gone, if anything: .config, the mirror directory
    (`root`; `kept`: its identity when the keeper started), the checkout it runs from
    (its Kconfig tree). A directory made anew at that path is not the one kept: a check
    that was halfway when the directory was deleted may have made parts of it again."""
    if not Path(settings.config_path).is_file():
        return f"{settings.config_path} is gone"
    if not root.is_dir():
        return f"the mirror directory {root} is gone"
    if kept is not None and identity(root) != kept:
        return f"the mirror directory {root} was deleted (the one there now is not the one kept)"
    if not KCONFIG.is_file():
        return f"the checkout {KCONFIG.parent} is gone"
    return None


def confirmed_gone(settings: Settings, root: Path, kept: tuple[int, int] | None = None) -> str | None:
    """gone(), believed only when it still says so CONFIRM_AFTER seconds later."""
    return second_look(lambda: gone(settings, root, kept), time.sleep, CONFIRM_AFTER)


def _stops_for_gone(settings: Settings, root: Path, log, kept: tuple[int, int] | None = None) -> bool:
    missing = confirmed_gone(settings, root, kept)
    if missing:
        _say_gone(missing, log)
    return bool(missing)


def _say_gone(missing: str, log) -> None:
    log(f"{missing} (its containers stay as they are; 'make docker-mirror' in a checkout "
        "sets the mirror up again): the keeper stops")


def _engine(connect: Callable, log) -> object:
    """A client of the engine, waiting for it as long as it takes (it may be restarting)."""
    waiting = False
    while True:
        try:
            client = connect()
        except DockerError as err:
            if not waiting:
                log(f"the Docker engine does not answer ({err}); waiting for it")
                waiting = True
            time.sleep(ENGINE_POLL)
            continue
        if waiting:
            log("the Docker engine answers again: checking the mirrors")
        return client


def _take_down_leftovers(settings: Settings, connect: Callable, log) -> None:
    """A check that began before the mirror was switched off may have started a container
    after `make docker-mirror` took them down: take those down too (found by their label)."""
    try:
        client = connect()
        with locks.held(Layout.of(settings).setup_lock) if Layout.of(settings).root.is_dir() \
                else contextlib.nullcontext():
            for name in containers.remove_all(client, settings) + replicas.remove(client, settings):
                log(f"removed container {name}: the mirror is switched off")
        client.close()
    except MirrorError as err:
        log(f"error: {err}")


def _reason_to_stop(settings: Settings, layout: Layout) -> str | None:
    """Why the keeper stops with these settings (read just now), if it does."""
    if not settings.enabled or not settings.install:
        return SWITCHED_OFF
    if not settings.keeper:
        return "the keeper is switched off in .config: the keeper stops"
    if Layout.of(settings).root != layout.root:
        return (f"the mirror moved to {settings.path}: this keeper stops; "
                "'make docker-mirror' starts the keeper of the new directory")
    return None


def _read(load_settings: Callable[[], Settings], settings: Settings, layout: Layout,
          log) -> tuple[Settings, str | None]:
    """The settings now and the keeper's reason to stop, if any, believed only when a
    second reading CONFIRM_AFTER seconds later says so too (a save in progress)."""
    for attempt in range(2):
        if attempt:
            time.sleep(CONFIRM_AFTER)
        try:
            now = load_settings()
        except NotConfiguredError as err:
            now, why = settings, f"{err}: the keeper stops"
        except MirrorError as err:
            log(f"error: {err}; going on with the settings read before")
            return settings, None
        else:
            why = _reason_to_stop(now, layout)
        if why is None:
            return now, None
    return now, why


def _first_read(load_settings: Callable[[], Settings], log) -> Settings | None:
    """The settings at start, or None (said) when .config is gone: nothing to keep."""
    try:
        return load_settings()
    except NotConfiguredError:
        time.sleep(CONFIRM_AFTER)   # a save in progress, maybe
    try:
        return load_settings()
    except NotConfiguredError as err:
        log(f"{err}: the keeper stops")
        return None


def run(load_settings: Callable[[], Settings], connect: Callable, log=print,
        cycles: int | None = None) -> int:
    """Keep the mirror up until it is switched off in .config; `cycles` bounds the loop (tests)."""
    settings = _first_read(load_settings, log)
    if settings is None:
        return 0
    layout = Layout.of(settings)
    busy = lambda: KeeperRunning(f"a keeper already runs for {layout.root} (pid "  # noqa: E731
                                 f"{locks.holder(layout.keeper_lock)})")
    # Before the lock: taking it would make the directory anew.
    if _stops_for_gone(settings, layout.root, log):
        return 0
    with locks.held(layout.keeper_lock, wait=False, busy=busy) as lock:
        inputs.record(lock, layout.keeper_lock, settings)   # `make docker-mirror` restarts it when they change
        locks.record_pid(lock)
        kept = identity(layout.root)
        log(f"keeping the mirror in {layout.root} up (checks every {settings.recheck_interval} s, "
            "and whenever the engine restarts or a mirror container dies)")
        last_check = float("-inf")
        while cycles is None or cycles > 0:
            cycles = None if cycles is None else cycles - 1
            read_from = config_digest(settings)
            settings, why = _read(load_settings, settings, layout, log)
            if why is not None:
                log(why)
                if why == SWITCHED_OFF:
                    _take_down_leftovers(settings, connect, log)
                return 0
            if _stops_for_gone(settings, layout.root, log, kept):
                return 0
            time.sleep(max(0.0, last_check + MIN_SPACING - time.monotonic()))
            client = _engine(connect, log)
            # Asked again right before the check: it may have gone during the waits.
            if _stops_for_gone(settings, layout.root, log, kept):
                client.close()
                return 0
            last_check, since = time.monotonic(), time.time()
            try:
                check(settings, client, log=log, root=layout.root, kept=kept, read_from=read_from)
            except MirrorGone as err:
                _say_gone(str(err), log)
                client.close()
                return 0
            except SettingsChanged:
                client.close()   # read .config again and check with what it says now
                continue
            except MirrorError as err:
                log(f"error: {err}")
            except Exception:  # noqa: BLE001 -- a bug must not end the keeping; say it and go on
                log(f"unexpected error (a bug; please report it):\n{traceback.format_exc()}")
            names = {name for u in settings.upstreams for name in containers.container_names(settings, u)}
            if settings.replicas.enabled:
                # HAProxy holds the mirror's port: its death is the whole mirror's.
                names |= {replicas.lb_name(settings), replicas.redis_name(settings)}
            if events.wait_for_death(client, names, since, settings.recheck_interval) == "died":
                log("a mirror container died: checking the mirrors")
            client.close()
    return 0
