"""The small files `docker-mirror-clients` owns outright: containerd's
certs.d/<registry>/hosts.toml and, with the mirror's CA (generated, or given
with the certificate: DOCKER_MIRROR_TLS_CA_CERTIFICATE), that CA for
containerd (beside each hosts.toml, named by its `ca =`) and for dockerd
(/etc/docker/certs.d/HOST:PORT/ca.crt, which it reads for registry-mirrors
and for HOST:PORT/... references alike).

Each is recorded with the bytes it replaced, so undo puts back what was there
(someone else's file) or removes it. A hosts.toml holding an Authorization
header is 0600.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config.dotconfig import PREFIX
from ..errors import ClientFileError, ConfigError
from ..host import client_files as files
from ..host.client_files import ClientPaths, b64, unb64
from ..host.htpasswd import Users
from ..host.proc import containerd_processes
from ..client_text import hosts_toml
from ..model.client_config import Wanted

CONTAINERD_CA = "docker-mirror-ca.crt"   # beside hosts.toml, named by its `ca =`
DEFAULT_CONTAINERD_CONFIG = "/etc/containerd/config.toml"   # what containerd reads without --config


@dataclass(frozen=True)
class HostsWrite:
    path: Path
    data: bytes
    mirror: str                  # what the file is for, in the report
    backup: bool                 # someone else's file is there: keep a copy
    secret: bool = False         # 0600 whatever the file had


@dataclass(frozen=True)
class HostsPlan:
    records: list[dict]
    writes: list[HostsWrite]
    notes: list[str]
    stale: list[dict]            # records of files no longer wanted


def read_ca(want: Wanted) -> bytes | None:
    """The CA to hand out (generated, or given with the certificate), or None."""
    if want.ca_file is None:
        return None
    data = files.read(Path(want.ca_file))
    if data is None:
        raise ClientFileError(f"{want.ca_file}: the mirror's CA is not there (a generated one is made "
                              "by 'make docker-mirror': run that first; a given one is "
                              "CONFIG_DOCKER_MIRROR_TLS_CA_CERTIFICATE); nothing was changed")
    return data


def check_client_credential(settings) -> None:
    """The user and password clients are given must be a user of the htpasswd file."""
    if settings.client_credential is None or settings.htpasswd_path is None:
        return
    user, password = settings.client_credential
    if not Users(settings.htpasswd_path).check(user, password):
        raise ConfigError(PREFIX + "DOCKER_MIRROR_CLIENT_PASSWORD", "<hidden>",
                          f"is not the password of user {user!r} in {settings.htpasswd_path} "
                          "(DOCKER_MIRROR_HTPASSWD_PATH); no client was given it")


def plan(prev_records: list[dict], certs_dir: Path, want: Wanted, paths: ClientPaths,
         ca: bytes | None, extra=()) -> HostsPlan:
    """hosts.toml for every mirrored registry, the CA files (generated TLS), and the whole
    files of the other clients found (`extra`: mirror.client_table.FileWant with data, or a
    copy of the CA)."""
    wanted: list[tuple[Path, bytes, str, bool]] = []
    for host in want.hosts:
        ca_path = certs_dir / host.registry / CONTAINERD_CA if ca is not None else None
        if ca_path is not None:
            wanted.append((ca_path, ca, f"the CA of {host.mirror_url}", False))
        data = hosts_toml(host.registry, host.mirror_url, host.server,
                          ca=str(ca_path) if ca_path else None, authorization=want.authorization)
        wanted.append((certs_dir / host.registry / "hosts.toml", data.encode("utf-8"),
                       f"mirror {host.mirror_url}", want.authorization is not None))
    if ca is not None:
        for address in want.ca_addresses:
            wanted.append((paths.docker_certs_dir / address / "ca.crt", ca, f"the CA of https://{address}", False))
    # the CA copies of the table's clients (FileWant.ca_copy) hold the CA read here
    wanted.extend((f.path, ca if f.ca_copy else f.data, f.what, f.secret) for f in extra)

    prev = {entry["path"]: entry for entry in prev_records}
    records, writes, notes = [], [], []
    for file, data, what, secret in wanted:
        current = files.read(file)
        before = prev.get(str(file))
        if current != data:
            ours = before is not None and current == unb64(before["written"])
            writes.append(HostsWrite(file, data, what, current is not None and not ours, secret))
        else:
            notes.append(f"{file}: already holds {what}")
            if secret and file.stat().st_mode & 0o077:
                writes.append(HostsWrite(file, data, what, False, secret))   # mode put back
        records.append({"path": str(file), "written": b64(data),
                        "original": before["original"] if before else b64(current),
                        "backups": (before or {}).get("backups", [])})
    wanted_paths = {entry["path"] for entry in records}
    stale = [entry for path_, entry in prev.items() if path_ not in wanted_paths]
    return HostsPlan(records, writes, notes, stale)


def record_backup(hosts: HostsPlan, path: Path, saved: Path | None) -> None:
    for entry in hosts.records:
        if saved and entry["path"] == str(path):
            entry.setdefault("backups", []).append(str(saved))


def undo_file(entry: dict) -> str:
    """A file of ours: the bytes it replaced back, or gone; kept when changed since."""
    return files.undo_recorded(entry)


def restart_hint(config_path: Path, proc_root: Path = Path("/proc")) -> str:
    """What makes the containerd running here read `config_path` (it reads it at start only)."""
    running = containerd_processes(proc_root)
    if not running:
        return f"containerd reads {config_path} when it starts (none runs now)"
    own = [p for p in running if (p.config or DEFAULT_CONTAINERD_CONFIG) == str(config_path)]
    docker = [p for p in running if p.parent == "dockerd" and p not in own]
    if own:
        return f"restart containerd to apply it (pid {own[0].pid}; systemctl restart containerd)"
    if docker:
        p = docker[0]
        return (f"the containerd running here (pid {p.pid}) is Docker's own, started by dockerd with "
                f"--config {p.config}: it does not read {config_path}, and Docker's pulls follow "
                "daemon.json instead; a containerd of your own (Kubernetes, nerdctl) reads it when "
                "started or restarted (systemctl restart containerd)")
    p = running[0]
    return (f"the containerd running here (pid {p.pid}) reads {p.config}, not {config_path}: "
            f"set config_path there, or start containerd with --config {config_path}")
