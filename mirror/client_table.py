"""Every client `make docker-mirror-clients` knows, and the files each reads: one table.

A client is one entry of CLIENTS: its name, how it is found on a host
(a program on PATH, or its configuration directory), the files it reads,
what goes into them (rendered from templates/), how they are written
(whole files of our own, drop-ins, or an edit merged into a file the user
owns), and where its credentials go or why they cannot. Adding the next
client is one more entry (and its template).

dockerd's daemon.json and containerd's config.toml are planned by
services.clients itself (a JSON merge, and a checked edit of one key); their
entries here carry what the report and docs say about them. Pure: renders
templates, touches no host file. What the host has (programs on PATH,
directories, the files a check reads) is looked at by services.client_probe
and handed in as a HostView; the CA's bytes are read by services.client_hosts
(a FileWant says `ca_copy`); services.clients reads and writes the files.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from . import client_merge, render
from .client_origin import HOST, HOST_HOSTS_TOML, Origin
from .model.client_config import Wanted

DROP_IN = "50-docker-mirror.conf"   # registries.conf.d/: read in order, a later prefix replaces ours


@dataclass(frozen=True)
class FileWant:
    """One file a client reads and what it should hold.

    `data`: the whole file (ours: written, and removed by undo). `merge`:
    instead, a function of the file's current text (None: absent) returning a
    client_merge.Merge: our entries added to someone else's file.
    """

    path: Path
    what: str
    data: bytes | None = None
    merge: Callable[[str | None], client_merge.Merge] | None = None
    secret: bool = False          # holds a password or Authorization header: 0600
    ca_copy: bool = False         # holds the mirror's CA (its bytes are read where the file is written)


# What a check read: a file's bytes, or the error reading it (a file absent is left out).
Seen = Mapping[Path, "bytes | OSError"]


@dataclass(frozen=True)
class HostView:
    """What the survey needs from the host, looked at by services.client_probe."""

    programs: frozenset[str] = frozenset()      # found on the search path
    directories: frozenset[Path] = frozenset()  # that exist
    seen: Seen = field(default_factory=dict)    # the files of every Client.inspects


@dataclass(frozen=True)
class LookFor:
    """What to look at on the host for the survey (services.client_probe does it)."""

    programs: tuple[str, ...]
    directories: tuple[Path, ...]
    files: tuple[tuple[Path, str], ...]         # (directory, glob pattern) of the files to read


@dataclass(frozen=True)
class Client:
    key: str
    name: str
    binaries: tuple[str, ...] = ()             # found when one of these is on PATH ...
    config_dirs: tuple[str, ...] = ()          # ... or one of these ClientPaths directories exists
    always: bool = False                       # configured whether found or not (dockerd, containerd)
    reads: str = ""                            # the files it reads (report, docs)
    strategy: str = ""                         # how the product writes them
    credentials: str = ""                      # where the client user goes, or why it cannot
    files: Callable[[Wanted, "object"], list[FileWant]] | None = None
    inspects: tuple[tuple[str, str], ...] = ()  # (ClientPaths attribute, glob): what blocked/notes read
    blocked: Callable[["object", Seen], str | None] | None = None   # why it cannot be configured here
    notes: Callable[[Wanted, "object", Seen], list[str]] | None = None   # what else on the host bears on it


@dataclass(frozen=True)
class Found:
    client: Client
    state: str        # "configure", "absent", "blocked"
    why: str = ""     # how it was found, or why it is absent / blocked


def _ca_path(paths, address: str) -> str:
    # The CA copy dockerd reads (written for every mirror with TLS, services.client_hosts):
    # BuildKit and k3s are pointed at the same file rather than given copies of their own.
    return str(paths.docker_certs_dir / address / "ca.crt")


# ---------------------------------------------------------------- the files of each client

def _docker_store_files(want: Wanted, paths) -> list[FileWant]:
    """Docker 29's containerd image store reads hosts.toml from /etc/docker/certs.d/<registry>/
    (registry-mirrors reaches docker.io only); dockerd's BuildKit uses the same hosts."""
    out = []
    for host in want.hosts:
        ca = _ca_path(paths, host.address) if want.ca_file and host.tls else None
        text = render.render("containerd-hosts.toml.j2", registry=host.registry, mirror_url=host.mirror_url,
                             server=host.server, ca=ca, authorization=want.authorization, origin=HOST_HOSTS_TOML)
        out.append(FileWant(paths.docker_hosts_dir / host.registry / "hosts.toml", f"mirror {host.mirror_url}",
                            data=text.encode("utf-8"), secret=want.authorization is not None))
    return out


def _text(raw: "bytes | OSError") -> str:
    if isinstance(raw, OSError):
        raise raw
    return raw.decode("utf-8")


def registries_conf_v1(paths, seen: Seen) -> str | None:
    """containers/image refuses to mix registries.conf formats: a v1 main file blocks a v2 drop-in."""
    main = paths.containers_dir / "registries.conf"
    if main not in seen:
        return None
    try:
        doc = tomllib.loads(_text(seen[main]))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        return f"{main} cannot be read ({err}): containers/image would fail on it too"
    if "registries" in doc:
        return (f"{main} is in the v1 format ([registries.search] ...), and containers/image "
                f"refuses a v2 drop-in beside it: convert it to v2 ([[registry]] tables) and run again")
    return None


def kind_nodes(paths, seen: Seen) -> str:
    """kind's nodes are containers with a containerd of their own: nothing on this host is
    read by them, so there is nothing to write here."""
    return ("its nodes are containers with their own containerd, which reads nothing on this host: "
            "create the cluster with a containerdConfigPatches entry setting the CRI registry "
            "config_path to /etc/containerd/certs.d and an extraMounts entry bringing this host's "
            "/etc/containerd/certs.d into each node (docs/clients.md)")


def containers_overlaps(want: Wanted, paths, seen: Seen) -> list[str]:
    """[[registry]] tables of other files for our prefixes: drop-ins are read in name order
    after registries.conf, and the last table for a prefix is the one used."""
    ours = {h.registry for h in want.hosts}
    main = paths.containers_dir / "registries.conf"
    conf_d = paths.containers_dir / "registries.conf.d"
    drop_ins = sorted(p for p in seen if p.parent == conf_d and p.name != DROP_IN)
    notes = []
    for file in [main, *drop_ins]:
        try:
            tables = tomllib.loads(_text(seen[file])).get("registry", [])
        except (KeyError, OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        for table in tables if isinstance(tables, list) else []:
            prefix = table.get("prefix") or table.get("location") if isinstance(table, dict) else None
            if prefix in ours:
                wins = file.parent.name == "registries.conf.d" and file.name > DROP_IN
                notes.append(f"{file}: has its own [[registry]] for {prefix}, which "
                             + ("is read after ours and wins: the mirror is not used for it"
                                if wins else f"{DROP_IN} replaces"))
    return notes


def containers_drop_in(hosts, origin: Origin = HOST) -> str:
    """The registries.conf.d drop-in; `origin`: who wrote it (a host's by default, whose
    bytes never change: client_origin)."""
    return render.render("containers-registries.conf.j2", hosts=hosts, origin=origin)


def _containers_files(want: Wanted, paths) -> list[FileWant]:
    out = [FileWant(paths.containers_dir / "registries.conf.d" / DROP_IN, "the mirrors, a v2 drop-in",
                    data=containers_drop_in(want.hosts).encode("utf-8"))]
    if want.ca_file:
        for host in want.hosts:
            if host.tls:   # containers/image reads certs.d/HOST:PORT/*.crt for that host only
                out.append(FileWant(paths.containers_dir / "certs.d" / host.address / "ca.crt",
                                    f"the CA of {host.mirror_url}", ca_copy=True))
    return out


def _buildkit_files(want: Wanted, paths) -> list[FileWant]:
    ca = {h.address: _ca_path(paths, h.address) for h in want.hosts if h.tls} if want.ca_file else {}
    path = paths.buildkit_config
    return [FileWant(path, "[registry.\"...\"] mirrors", merge=lambda text: client_merge.buildkit(
        text, want.hosts, ca, path))]


def _k3s_files(attr: str):
    def files(want: Wanted, paths) -> list[FileWant]:
        ca = {h.address: _ca_path(paths, h.address) for h in want.hosts if h.tls} if want.ca_file else {}
        path = getattr(paths, attr)
        return [FileWant(path, "mirrors: endpoint" + (", configs: auth" if want.credential else "")
                         + (", tls: ca_file" if ca else ""),
                         merge=lambda text: client_merge.k3s(text, want.hosts, ca, want.credential, path),
                         secret=want.credential is not None)]
    return files


# ---------------------------------------------------------------- the table

CLIENTS: tuple[Client, ...] = (
    Client("docker", "Docker Engine (dockerd)", binaries=("dockerd",), always=True,
           reads="/etc/docker/daemon.json (registry-mirrors, insecure-registries); "
                 "/etc/docker/certs.d/HOST:PORT/ca.crt",
           strategy="registry-mirrors merged into daemon.json (docker.io only), dockerd reloaded",
           credentials="left to the user: Docker takes them from 'docker login' (per user, ~/.docker/config.json)"),
    Client("containerd", "containerd (Kubernetes nodes, nerdctl, ctr)", binaries=("containerd",), always=True,
           reads="config.toml (CRI registry config_path); certs.d/<registry>/hosts.toml",
           strategy="hosts.toml per registry (ours); config_path set in config.toml when unset",
           credentials="Authorization header in each hosts.toml (0600)"),
    Client("docker-containerd-store", "Docker 29 containerd image store (and dockerd's BuildKit)",
           binaries=("dockerd",), config_dirs=("docker_hosts_dir",),
           reads="/etc/docker/certs.d/<registry>/hosts.toml",
           strategy="hosts.toml per registry (ours), every mirrored registry, not docker.io only",
           credentials="Authorization header in each hosts.toml (0600)",
           files=_docker_store_files),
    Client("containers", "Podman, Buildah, Skopeo, CRI-O (containers/image)",
           binaries=("podman", "buildah", "skopeo", "crio"), config_dirs=("containers_dir",),
           reads="/etc/containers/registries.conf.d/*.conf; /etc/containers/certs.d/HOST:PORT/*.crt",
           strategy=f"drop-in registries.conf.d/{DROP_IN} (ours); CA in certs.d/HOST:PORT/ca.crt",
           credentials="left to the user: containers/image reads auth.json per user "
                       "($XDG_RUNTIME_DIR/containers/auth.json, root's /run/containers/0/auth.json, "
                       "gone at reboot): 'podman login HOST:PORT'",
           files=_containers_files, blocked=registries_conf_v1, notes=containers_overlaps,
           inspects=(("containers_dir", "registries.conf"), ("containers_dir", "registries.conf.d/*.conf"))),
    Client("buildkit", "BuildKit (buildkitd outside dockerd)", binaries=("buildkitd",),
           config_dirs=("buildkit_config",),
           reads="/etc/buildkit/buildkitd.toml ([registry.\"<registry>\"] mirrors, http, ca)",
           strategy="[registry.\"...\"] tables appended to the user's file (or a new file)",
           credentials="left to the user: BuildKit takes them from the build client's docker config (per user)",
           files=_buildkit_files),
    Client("kind", "kind (Kubernetes in Docker)", binaries=("kind",),
           reads="the containerd config and certs.d inside each node container",
           strategy="none: the cluster's own config (containerdConfigPatches, extraMounts)",
           credentials="in the hosts.toml files the nodes mount (as containerd's)",
           blocked=kind_nodes),
    Client("k3s", "k3s", binaries=("k3s",), config_dirs=("k3s_registries",),
           reads="/etc/rancher/k3s/registries.yaml (mirrors: endpoint; configs: auth, tls ca_file)",
           strategy="entries merged into the user's registries.yaml (or a new file); restart k3s",
           credentials="configs.<mirror>.auth username/password (the file is then 0600)",
           files=_k3s_files("k3s_registries")),
    Client("rke2", "RKE2", binaries=("rke2",), config_dirs=("rke2_registries",),
           reads="/etc/rancher/rke2/registries.yaml (as k3s)",
           strategy="entries merged into the user's registries.yaml (or a new file); restart rke2",
           credentials="configs.<mirror>.auth username/password (the file is then 0600)",
           files=_k3s_files("rke2_registries")),
)


_FILES = ("buildkit_config", "k3s_registries", "rke2_registries")


def _config_dir(paths, attr: str) -> Path:
    path = getattr(paths, attr)
    return path.parent if attr in _FILES else path   # a config file: its directory says it is installed


def _looked_at(paths, client: Client) -> bool:
    return all(getattr(paths, attr) is not None for attr in client.config_dirs)


def look_for(paths) -> LookFor:
    """The programs, directories and files the survey of `paths` needs to know about."""
    clients = [c for c in CLIENTS if _looked_at(paths, c)]
    return LookFor(
        programs=tuple(dict.fromkeys(b for c in clients for b in c.binaries)),
        directories=tuple(dict.fromkeys(_config_dir(paths, a) for c in clients for a in c.config_dirs)),
        files=tuple((getattr(paths, attr), pattern) for c in clients for attr, pattern in c.inspects
                    if getattr(paths, attr) is not None))


def survey(paths, view: HostView) -> list[Found]:
    """Which clients this host has (`view`, services.client_probe.look), and whether each can
    be configured. A client whose files `paths` leaves out (None) is not looked at."""
    out = []
    for client in CLIENTS:
        if not _looked_at(paths, client):
            continue
        program = next((b for b in client.binaries if b in view.programs), None)
        directory = next((d for attr in client.config_dirs if (d := _config_dir(paths, attr)) in view.directories),
                         None)
        if not (client.always or program or directory):
            looked = [f"{'/'.join(client.binaries)} on PATH"] if client.binaries else []
            looked += [str(_config_dir(paths, a)) for a in client.config_dirs]
            out.append(Found(client, "absent", "no " + " and no ".join(looked)))
            continue
        reason = client.blocked(paths, view.seen) if client.blocked else None
        if reason:
            out.append(Found(client, "blocked", reason))
            continue
        how = (f"{program} on PATH" if program else f"{directory} exists" if directory
               else "not found here, configured for when it is installed")
        out.append(Found(client, "configure", how))
    return out
