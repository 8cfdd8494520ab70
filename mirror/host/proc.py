"""What /proc says about the processes the mirror deals with."""

from __future__ import annotations

from pathlib import Path

# daemon.json keys and the dockerd flags that set the same thing
DOCKERD_FLAGS = {"registry-mirrors": b"--registry-mirror", "insecure-registries": b"--insecure-registry"}


def dockerd_pid(pid_file: Path) -> int | None:
    """The pid of the running dockerd named by `pid_file`, or None.

    A stale pid file may name some other process by now: only a process
    whose name is dockerd counts, so nothing else ever gets a SIGHUP.
    """
    try:
        pid = int(Path(pid_file).read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == "dockerd" else None


def dockerd_flags_conflict(pid: int, keys) -> list[str]:
    """daemon.json keys dockerd's own command line sets too: it refuses such a file."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []
    return [key for key in keys if any(arg.split(b"=")[0] == DOCKERD_FLAGS[key] for arg in argv)]
