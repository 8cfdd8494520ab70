"""What /proc says about the processes the mirror deals with."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Containerd:
    pid: int
    config: str | None    # its --config/-c; None: containerd's default, /etc/containerd/config.toml
    parent: str           # the parent's name: "dockerd" for Docker's bundled containerd


def containerd_processes(proc_root: Path = Path("/proc")) -> list[Containerd]:
    """Every running containerd, with the config file it was started with."""
    found = []
    for entry in Path(proc_root).iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "containerd":
                continue
            argv = [a.decode("utf-8", "replace") for a in (entry / "cmdline").read_bytes().split(b"\0")]
            ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue   # gone meanwhile
        try:
            parent = (Path(proc_root) / ppid / "comm").read_text().strip()
        except OSError:
            parent = ""
        config = None
        for i, arg in enumerate(argv):
            if arg in ("--config", "-c") and i + 1 < len(argv):
                config = argv[i + 1]
            elif arg.startswith("--config="):
                config = arg.split("=", 1)[1]
        found.append(Containerd(int(entry.name), config, parent))
    return sorted(found, key=lambda c: c.pid)
