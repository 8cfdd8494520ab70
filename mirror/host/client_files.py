"""Host files that belong to someone else (daemon.json, containerd's config, hosts.toml),
and the record of what docker-mirror-clients changed in them.

Every read and write fails as ClientFileError naming the file; writes keep
the owner's mode (a file given a secret is made 0600 before it holds it). The record (<DOCKER_MIRROR_PATH>/config/clients-state.json)
holds the original bytes of every file changed, base64, so that undo can put
back exactly what was there.
"""

from __future__ import annotations

import base64
import dataclasses
import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ClientFileError
from . import files

STATE_VERSION = 1


@dataclass(frozen=True)
class ClientPaths:
    """Where this host's client configuration lives (tests point these at a tmp dir)."""

    daemon_json: Path = Path("/etc/docker/daemon.json")
    docker_pid: Path = Path("/var/run/docker.pid")
    containerd_config: Path = Path("/etc/containerd/config.toml")
    certs_dir: Path = Path("/etc/containerd/certs.d")
    docker_certs_dir: Path = Path("/etc/docker/certs.d")   # HOST:PORT/ca.crt, read by dockerd
    # The clients of mirror.client_table: None leaves a client out (callers that name
    # daemon.json and containerd's files only, as before); host() and under() set them all.
    docker_hosts_dir: Path | None = None     # /etc/docker/certs.d/<registry>/hosts.toml: Docker 29
    containers_dir: Path | None = None       # registries.conf(.d), certs.d: containers/image
    buildkit_config: Path | None = None
    k3s_registries: Path | None = None
    rke2_registries: Path | None = None
    search_path: str | None = None           # where client programs are looked for (None: $PATH)

    @classmethod
    def host(cls, **given) -> "ClientPaths":
        """This host's files, every client included; `given` replaces some."""
        return cls(**{**HOST_CLIENT_FILES, **given})

    @classmethod
    def under(cls, root: Path, search_path: str | None = None) -> "ClientPaths":
        """Every /etc path moved under `root` (tests, a chroot, an image being built);
        the pid file too: no dockerd is signalled."""
        every = {f.name: getattr(cls, f.name) for f in dataclasses.fields(cls)
                 if isinstance(getattr(cls, f.name), Path)}
        moved = {name: Path(root) / path.relative_to("/") for name, path in {**every, **HOST_CLIENT_FILES}.items()}
        return cls(**moved, search_path=search_path)


HOST_CLIENT_FILES = {
    "docker_hosts_dir": Path("/etc/docker/certs.d"),
    "containers_dir": Path("/etc/containers"),
    "buildkit_config": Path("/etc/buildkit/buildkitd.toml"),
    "k3s_registries": Path("/etc/rancher/k3s/registries.yaml"),
    "rke2_registries": Path("/etc/rancher/rke2/registries.yaml"),
}


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ClientFileError(f"cannot read {path}: {err.strerror}; nothing was changed") from None


def check_writable(path: Path) -> None:
    """Fail before any write when `path` cannot be written (atomic_write needs its directory)."""
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ClientFileError(f"cannot write {path}: {ancestor} is not a directory; nothing was changed")
    # access(2) also answers EROFS for a read-only mount, which root's bypass of mode bits does not cover
    if not os.access(ancestor, os.W_OK | os.X_OK):
        why = "read-only file system" if _read_only_fs(ancestor) else "permission denied"
        raise ClientFileError(f"cannot write {path}: {ancestor} is not writable ({why}); nothing was changed")
    if path.is_dir():
        raise ClientFileError(f"cannot write {path}: it is a directory; nothing was changed")


def _read_only_fs(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def write(path: Path, data: bytes, mode: int = 0o644, *, secret: bool = False) -> None:
    """`data` into `path` (temp file and rename); an existing file keeps its owner's mode.

    `secret` (a password or an Authorization header): the file is 0600 when it was
    readable by group or others, and a new one is 0600. The temp file gets that mode
    before any byte is written, so the secret is never readable by others, even for
    the moment between the rename and a later chmod.
    """
    # A symlinked daemon.json (a configuration kept elsewhere, under version control)
    # stays a link: the file it points at is replaced, never the link by a file.
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        if path.exists():
            mode = path.stat().st_mode & 0o7777  # keep the owner's choice of mode
        elif secret:
            mode = 0o600
        if secret and mode & 0o077:
            mode = 0o600
        files.atomic_write(path, data, mode=mode)
    except OSError as err:
        raise ClientFileError(f"cannot write {path}: {err.strerror}") from None


def backup(path: Path) -> Path | None:
    try:
        return files.backup(path)
    except OSError as err:
        raise ClientFileError(f"cannot back up {path} before changing it: {err.strerror}; "
                              "left untouched") from None


def drop_backups(entry: dict | None) -> list[str]:
    """Remove the copies apply kept of `entry`'s file (its "backups") that hold exactly
    what the file holds again after undo: nothing is lost, and /etc is not left with
    a .bak-* per run. A copy that differs (someone's other version) is kept."""
    dropped = []
    current = read(Path(entry["path"])) if entry else None
    for kept in (entry or {}).get("backups", []):
        if current is not None and read(Path(kept)) == current:
            unlink(Path(kept))
            dropped.append(kept)
    return dropped


@dataclass(frozen=True)
class Strip:
    """How our part comes out of a recorded file someone changed since it was written."""

    take_out: Callable[[str], str | None]   # the text without our part; None: our part was changed too
    what: str                               # "our entries", for the report
    by_hand: str                            # what the user does when it cannot come out


def undo_recorded(entry: dict, strip: Strip | None = None, then: Callable[[], str] | None = None) -> str:
    """Take back one file a record names ({"path", "original", "written", "mode"?,
    "backups"?}, bytes base64) and say what was done.

    Unchanged since written: the original comes back byte for byte (and its mode), or
    the file goes when there was none. Changed since: `strip` takes out only our part
    (the previous version kept as a backup), or, without one, the file is kept.
    `then`: what makes the program read the file again, said once it changed.
    """
    path = Path(entry["path"])
    current = read(path)
    original = unb64(entry["original"])
    after = (lambda line: f"{line}: {then()}") if then else (lambda line: line)
    if current == original:
        return f"{path}: as it was before docker-mirror-clients"
    if current is None:
        return f"{path}: already gone"
    if current == unb64(entry["written"]):
        if original is None:
            unlink(path)
            return after(f"{path}: removed (docker-mirror-clients had created it)")
        write(path, original)
        if entry.get("mode") is not None:
            path.chmod(entry["mode"])   # a password had made it 0600
        dropped = drop_backups(entry)   # the copy apply kept holds exactly what is back
        return after(f"{path}: previous version put back" + (f" ({', '.join(dropped)} removed)" if dropped else ""))
    if strip is None:
        return f"{path}: kept, it was changed after docker-mirror-clients wrote it"
    stripped = strip.take_out(current.decode("utf-8", "replace"))
    if stripped is None:
        return f"{path}: kept as it is, {strip.what} not found intact: {strip.by_hand}"
    saved = backup(path)
    write(path, stripped.encode("utf-8"))
    return f"{path}: {strip.what} taken out, the rest kept (previous version kept as {saved})"


def unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as err:
        raise ClientFileError(f"cannot remove {path}: {err.strerror}") from None


def missing_dirs(directory: Path) -> list[Path]:
    """The directories mkdir -p would create for `directory`, outermost first."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    return list(reversed(missing))


# ---------------------------------------------------------------- the record

@contextmanager
def locked(state_file: Path):
    """One apply/undo at a time: each reads the state, edits files, and writes the state."""
    state_file.parent.mkdir(parents=True, exist_ok=True)
    with open(state_file.with_name(".clients.lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def load_state(path: Path) -> dict:
    data = read(path)
    if data is None:
        return {}
    try:
        state = json.loads(data)
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"version {state.get('version')!r}, expected {STATE_VERSION}")
        return state
    except (ValueError, AttributeError) as err:
        raise ClientFileError(f"{path}: not a state file this tool wrote ({err}); nothing was "
                              "changed. Remove it only if the clients hold no mirror setting") from None


def save_state(path: Path, state: dict) -> None:
    # 0600: it holds copies of daemon.json, which may name proxies with credentials
    files.atomic_write(path, json.dumps({**state, "version": STATE_VERSION}, indent=2) + "\n", mode=0o600)
