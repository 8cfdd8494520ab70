"""systemd on this host: is it there, the mirror's units, and the refresh schedule.

Without systemd as PID 1 the refresh runs as a detached process instead
(start_detached). Unit texts come rendered (mirror.render); this module
only writes them and asks systemctl, so commands that install, start,
stop or remove units all go through the same few calls.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import HostToolError
from .files import atomic_write

SYSTEMD_DIR = Path("/etc/systemd/system")
KEEPER_UNIT = "docker-mirror.service"
REFRESH_UNIT = "docker-mirror-update.service"
REFRESH_TIMER = "docker-mirror-update.timer"
OBSERVE_UNIT = "docker-mirror-observe.service"   # metrics and status page (DOCKER_MIRROR_OBSERVE)
UNITS = (KEEPER_UNIT, REFRESH_UNIT, REFRESH_TIMER, OBSERVE_UNIT)
SYSTEMCTL_TIMEOUT = 5.0   # seconds for systemctl show / systemd-analyze


def systemd_is_pid1() -> bool:
    """True when systemd manages this host (the test sd_booted(3) uses)."""
    return os.path.isdir("/run/systemd/system")


def systemctl(*args: str) -> None:
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise HostToolError(f"systemctl {' '.join(args)} failed (exit {done.returncode}): "
                            f"{(done.stderr or done.stdout).strip()}")


def write_units(units: dict[str, str]) -> set[str]:
    """Write the unit files whose text differs; returns their names (then daemon-reload)."""
    changed = set()
    for name, text in units.items():
        path = SYSTEMD_DIR / name
        if not path.exists() or path.read_text() != text:
            atomic_write(path, text)
            changed.add(name)
    if changed:
        systemctl("daemon-reload")
    return changed


def start_units(enable: list[str], start: list[str], changed: set[str]) -> None:
    """Enable `enable` and start `start`; one whose file changed is restarted to take it up."""
    systemctl("enable", *enable)
    for name in start:
        systemctl("restart" if name in changed else "start", name)


def units_of(marker: str) -> list[str]:
    """The installed units of this file set whose services name `marker` (a mirror's .config);
    the refresh timer goes with the refresh service it starts."""
    found = []
    for name in (KEEPER_UNIT, REFRESH_UNIT, OBSERVE_UNIT):
        try:
            if marker in (SYSTEMD_DIR / name).read_text():
                found.append(name)
        except FileNotFoundError:
            continue
    if REFRESH_UNIT in found and (SYSTEMD_DIR / REFRESH_TIMER).exists():
        found.append(REFRESH_TIMER)
    return found


def remove_units(names: list[str]) -> None:
    """Stop, disable and delete `names`."""
    if not names:
        return
    subprocess.run(["systemctl", "disable", "--now", *names], capture_output=True)
    for name in names:
        (SYSTEMD_DIR / name).unlink(missing_ok=True)
    systemctl("daemon-reload")


def start_refresh() -> None:
    # --no-block: the first refresh may take long; setup returns now.
    systemctl("start", "--no-block", REFRESH_UNIT)


def start_detached(argv: list[str], cwd: Path, output: Path | None = None) -> int:
    """No systemd: start `argv` detached from this process and its terminal; returns its pid.

    `output`: a file its stdout and stderr are appended to (default: nowhere).
    """
    with open(os.devnull, "rb") as devnull, \
            open(output if output else os.devnull, "ab") as out:
        process = subprocess.Popen(argv, cwd=cwd, stdin=devnull, stdout=out, stderr=out,
                                   start_new_session=True)
    return process.pid


def _output(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def next_elapse(on_calendar: str, now: float | None = None) -> str | None:
    """When `on_calendar` next elapses after `now` (epoch seconds; default now),
    as systemd-analyze writes it ('Tue 2026-11-24 02:00:00 UTC'); None when
    systemd-analyze is missing, slow or rejects the expression."""
    argv = ["systemd-analyze", "calendar", "--iterations=1"]
    if now is not None:
        argv.append(f"--base-time=@{int(now)}")
    out = _output([*argv, "--", on_calendar])
    for line in (out or "").splitlines():
        label, colon, value = line.strip().partition(":")
        if colon and label == "Next elapse":
            return value.strip() or None
    return None


def timer_next_elapse() -> str | None:
    """The refresh timer's next run as systemd has it scheduled (systemd hosts)."""
    out = _output(["systemctl", "show", REFRESH_TIMER, "-p", "NextElapseUSecRealtime", "--value"])
    value = (out or "").strip()
    return value if value and value != "n/a" else None
