"""This host's Docker and containerd pointed at the mirror, and taken back.

`make docker-mirror-clients` is apply(), `make docker-mirror-clients-undo`
is undo().

- Docker: the Docker Hub mirror goes into `registry-mirrors` of daemon.json
  (Docker mirrors Docker Hub only), and every mirror's HOST:PORT into
  `insecure-registries` when the mirrors speak plain HTTP on an address that
  is not loopback (dockerd trusts plain HTTP on 127.0.0.0/8 by itself). Other
  keys and entries stay; dockerd is reloaded and asked, through its own
  `info`, whether the mirror is active.
- containerd: `certs.d/<registry>/hosts.toml` for every mirrored registry,
  the mirror first and the real registry as `server` (the fallback), in the
  directory containerd's `config_path` names (set to certs_dir when unset).

What apply added is recorded in <DOCKER_MIRROR_PATH>/config/clients-state.json
(with the original bytes of every file it changed), so undo removes exactly
that: a file nobody touched in between comes back byte for byte, and in a
file someone changed since, only our entries go.

The pure part (wanted, parse/merge/unmerge_daemon_json, hosts_toml,
plan_containerd_config) does no I/O; apply/undo/reload_docker do all of it.
"""

from __future__ import annotations

import base64
import copy
import fcntl
import ipaddress
import json
import os
import re
import signal
import subprocess
import textwrap
import time
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import probes, render
from .errors import DockerError, MirrorError
from .fsutil import atomic_write, backup
from .layout import Layout
from .rewrite import client_host
from .settings import Settings

REGISTRY_MIRRORS = "registry-mirrors"
INSECURE_REGISTRIES = "insecure-registries"
DOCKER_HUB = "docker.io"
DOCKER_HUB_SERVER = "https://registry-1.docker.io"  # where Docker Hub's API really lives
STATE_FILE = "clients-state.json"
STATE_VERSION = 1
RELOAD_TIMEOUT = 15.0
DOCKERD_LOG = "/var/log/dockerd.log"  # where scripts/start-docker-engine.sh sends it

# The CRI plugin's registry table, by containerd config version
# (1: containerd 1.x without `version`; 2: 1.x; 3: 2.x).
CRI_REGISTRY_TABLE = {
    1: ("plugins", "cri", "registry"),
    2: ("plugins", "io.containerd.grpc.v1.cri", "registry"),
    3: ("plugins", "io.containerd.cri.v1.images", "registry"),
}


class ClientFileError(MirrorError):
    """A host file (daemon.json, config.toml, hosts.toml, the state) that cannot be used."""

    exit_code = 2


class MirrorNotInUse(MirrorError):
    """The .config says this host's clients should not use the mirror."""

    exit_code = 2


class DockerReloadError(DockerError):
    """dockerd could not be reloaded, or did not take the new settings."""


@dataclass(frozen=True)
class ClientPaths:
    """Where this host's client configuration lives (tests point these at a tmp dir)."""

    daemon_json: Path = Path("/etc/docker/daemon.json")
    docker_pid: Path = Path("/var/run/docker.pid")
    containerd_config: Path = Path("/etc/containerd/config.toml")
    certs_dir: Path = Path("/etc/containerd/certs.d")


@dataclass(frozen=True)
class HostMirror:
    registry: str      # docker.io, ghcr.io, ... (the certs.d directory name)
    server: str        # the real registry: containerd's fallback
    mirror_url: str    # http(s)://HOST:PORT


@dataclass(frozen=True)
class Wanted:
    mirrors: tuple[str, ...]     # registry-mirrors entries
    insecure: tuple[str, ...]    # insecure-registries entries
    hosts: tuple[HostMirror, ...]


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    state_path: Path | None = None

    def add(self, line: str) -> None:
        self.lines.append(line)


# ---------------------------------------------------------------- pure part

def registry_server(registry: str) -> str:
    """The real registry behind `registry`, as containerd's `server` (fallback)."""
    return DOCKER_HUB_SERVER if registry == DOCKER_HUB else f"https://{registry}"


def mirror_is_loopback(settings: Settings) -> bool:
    return ipaddress.ip_address(client_host(settings.bind_address).strip("[]")).is_loopback


def wanted(settings: Settings) -> Wanted:
    """What this host's clients need for `settings`' mirrors."""
    scheme = "https" if settings.tls_certificate else "http"
    host = client_host(settings.bind_address)  # 0.0.0.0 -> 127.0.0.1, IPv6 bracketed
    urls = {u.registry: f"{scheme}://{host}:{u.port}" for u in settings.upstreams}
    # dockerd allows plain HTTP on loopback without being told; anywhere else
    # it refuses to talk HTTP to a registry unless it is listed as insecure.
    insecure = () if scheme == "https" or mirror_is_loopback(settings) else \
        tuple(f"{host}:{u.port}" for u in settings.upstreams)
    return Wanted(
        mirrors=(urls[DOCKER_HUB],) if DOCKER_HUB in urls else (),
        insecure=insecure,
        hosts=tuple(HostMirror(registry, registry_server(registry), url) for registry, url in urls.items()),
    )


def _same_mirror(a: str, b: str) -> bool:
    # dockerd stores mirrors with a trailing slash: "http://h:5000/" is "http://h:5000"
    return a.rstrip("/") == b.rstrip("/")


def parse_daemon_json(data: bytes | None, path: str | Path) -> dict:
    """daemon.json's object ({} when absent or blank, as dockerd reads it), validated."""
    if data is None:
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ClientFileError(f"{path}: not UTF-8 text ({err}); left untouched: "
                              "fix it and run again") from None
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ClientFileError(
            f"{path}: not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}; "
            "left untouched: fix it (dockerd will not start with it either) and run again") from None
    if not isinstance(doc, dict):
        raise ClientFileError(f"{path}: holds a JSON {type(doc).__name__}, not an object "
                              "({...}); left untouched: fix it and run again")
    for key in (REGISTRY_MIRRORS, INSECURE_REGISTRIES):
        value = doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ClientFileError(f"{path}: {key!r} is {value!r}, not a list of strings; "
                                  "left untouched: fix it and run again")
    return doc


def dump_daemon_json(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def merge_daemon_json(current: dict, mirrors, insecure) -> tuple[dict, dict[str, list[str]]]:
    """`current` with `mirrors` and `insecure` entries merged in, and what was added.

    Our mirror goes first in registry-mirrors (dockerd tries them in order and
    the local mirror is the one the user asked for); other entries keep their
    order. An entry already there (modulo a trailing slash for mirrors) is not
    added again, and not reported as added, so undo leaves it.
    """
    new = dict(current)
    added: dict[str, list[str]] = {}
    for key, entries, first in ((REGISTRY_MIRRORS, mirrors, True), (INSECURE_REGISTRIES, insecure, False)):
        existing = list(current.get(key, []))
        fresh: list[str] = []
        for entry in entries:
            if not any(_same_mirror(entry, have) for have in existing + fresh):
                fresh.append(entry)
        if fresh:
            new[key] = fresh + existing if first else existing + fresh
            added[key] = fresh
    return new, added


def unmerge_daemon_json(current: dict, added: dict[str, list[str]], created_keys) -> dict:
    """`current` without the entries in `added`; a key in `created_keys` goes once empty."""
    new = dict(current)
    for key, entries in added.items():
        if not isinstance(new.get(key), list):
            continue
        kept = [entry for entry in new[key] if entry not in entries]
        if not kept and key in created_keys:
            del new[key]
        else:
            new[key] = kept
    return new


def hosts_toml(registry: str, mirror_url: str, server: str | None = None) -> str:
    """containerd's certs.d/<registry>/hosts.toml: `mirror_url` first, then `server`."""
    return render.render("containerd-hosts.toml.j2", registry=registry, mirror_url=mirror_url,
                   server=server or registry_server(registry))


@dataclass(frozen=True)
class ContainerdPlan:
    certs_dir: str             # where hosts.toml files go: containerd's config_path
    new_text: str | None       # the config to write; None: leave the file as it is
    inserted: str | None       # the text added into an existing file (undo takes it out)
    note: str                  # what was decided, for the report


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else render.toml_str(key)


def _header_pattern(keys) -> re.Pattern:
    parts = []
    for key in keys:
        options = [f'"{re.escape(key)}"', f"'{re.escape(key)}'"]
        if re.fullmatch(r"[A-Za-z0-9_-]+", key):
            options.append(re.escape(key))
        parts.append("(?:" + "|".join(options) + ")")
    return re.compile(r"^[ \t]*\[[ \t]*" + r"[ \t]*\.[ \t]*".join(parts) + r"[ \t]*\][ \t]*(?:#.*)?$", re.M)


def _walk(doc: dict, keys, path) -> dict | None:
    node = doc
    for depth, key in enumerate(keys):
        if key not in node:
            return None
        node = node[key]
        if not isinstance(node, dict):
            raise ClientFileError(f"{path}: {'.'.join(keys[:depth + 1])} is not a table; "
                                  "left untouched: fix it and run again")
    return node


def _parse_toml(text: str, path) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # tomllib's message ends with "(at line L, column C)"
        raise ClientFileError(f"{path}: not valid TOML: {err}; left untouched: fix it "
                              "(containerd will not start with it either) and run again") from None


def plan_containerd_config(text: str | None, certs_dir: str, path="config.toml") -> ContainerdPlan:
    """Make containerd's CRI registry `config_path` name a certs.d directory.

    A config that names one already is left alone, and hosts.toml files go
    where it says. Otherwise `config_path = certs_dir` is inserted under an
    existing registry table header, or a new table is appended; the result is
    parsed again and must differ from the original in that one key only.
    """
    if text is None:
        header = "[" + ".".join(_toml_key(k) for k in CRI_REGISTRY_TABLE[2]) + "]"
        new = render.render("containerd-config.toml.j2", header=header, certs_dir=certs_dir)
        return ContainerdPlan(certs_dir, new, None, f"created with config_path = {certs_dir}")
    doc = _parse_toml(text, path)
    version = doc.get("version", 1)
    if version not in CRI_REGISTRY_TABLE:
        raise ClientFileError(f"{path}: config version {version!r} is not one this tool edits "
                              f"({', '.join(map(str, CRI_REGISTRY_TABLE))}); set the CRI registry "
                              f"config_path = {render.toml_str(certs_dir)} by hand")
    keys = CRI_REGISTRY_TABLE[version]
    table_name = ".".join(_toml_key(k) for k in keys)
    registry = _walk(doc, keys, path)
    current = (registry or {}).get("config_path")
    if current not in (None, ""):
        if not isinstance(current, str):
            raise ClientFileError(f"{path}: {table_name}.config_path is {current!r}, not a path")
        return ContainerdPlan(current, None, None, f"config_path = {current} already: hosts.toml go there")
    if (registry or {}).get("mirrors"):
        raise ClientFileError(
            f"{path}: [{table_name}.mirrors] is set, and containerd refuses config_path next to it; "
            f"move those mirrors into {certs_dir}/<registry>/hosts.toml files (or remove them), "
            "then run again; left untouched")

    headers = list(_header_pattern(keys).finditer(text))
    if len(headers) == 1:
        line_end = text.find("\n", headers[0].end())
        at = len(text) if line_end < 0 else line_end + 1
        prefix = "" if line_end >= 0 else "\n"
        indent = re.match(r"[ \t]*", headers[0].group(0)).group(0)  # line up with the table's header
        inserted = prefix + textwrap.indent(
            render.render("containerd-registry.toml.j2", header=None, certs_dir=certs_dir), indent)
        new = text[:at] + inserted + text[at:]
    elif not headers and registry is None:
        inserted = ("" if text.endswith("\n") or not text else "\n") + \
            render.render("containerd-registry.toml.j2", header=f"[{table_name}]", certs_dir=certs_dir)
        new = text + inserted
    else:
        raise ClientFileError(f"{path}: the [{table_name}] table is written in a form this tool "
                              f"does not edit; add config_path = {render.toml_str(certs_dir)} to it by hand")
    _check_only_config_path_changed(doc, new, keys, certs_dir, path)
    return ContainerdPlan(certs_dir, new, inserted, f"config_path = {certs_dir} set")


def _check_only_config_path_changed(old: dict, new_text: str, keys, certs_dir: str, path) -> None:
    new = copy.deepcopy(_parse_toml(new_text, path))
    node, chain = new, []
    for key in keys:
        chain.append(node)
        node = node.get(key) if isinstance(node.get(key), dict) else None
        if node is None:
            break
    ok = node is not None and node.pop("config_path", None) == certs_dir
    # tables the edit created are empty now: drop them again before comparing
    for parent, key in reversed(list(zip(chain, keys))):
        if ok and parent.get(key) == {} and _walk_quiet(old, keys[:keys.index(key) + 1]) is None:
            del parent[key]
    if not ok or new != old:
        raise ClientFileError(f"{path}: could not add config_path without changing anything else "
                              f"(a bug, or an unusual layout); add config_path = {render.toml_str(certs_dir)} "
                              "by hand; left untouched")


def _walk_quiet(doc: dict, keys):
    node = doc
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def remove_inserted(text: str, inserted: str) -> str | None:
    """`text` without our inserted snippet, or None when it is not there exactly once."""
    if not inserted or text.count(inserted) != 1:
        return None
    return text.replace(inserted, "", 1)


# ---------------------------------------------------------------- host files

def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ClientFileError(f"cannot read {path}: {err.strerror}; nothing was changed") from None


def _check_writable(path: Path) -> None:
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


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    try:
        if path.exists():
            mode = path.stat().st_mode & 0o7777  # keep the owner's choice of mode
        atomic_write(path, data, mode=mode)
    except OSError as err:
        raise ClientFileError(f"cannot write {path}: {err.strerror}") from None


def _backup(path: Path) -> Path | None:
    try:
        return backup(path)
    except OSError as err:
        raise ClientFileError(f"cannot back up {path} before changing it: {err.strerror}; "
                              "left untouched") from None


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as err:
        raise ClientFileError(f"cannot remove {path}: {err.strerror}") from None


def _missing_dirs(directory: Path) -> list[Path]:
    """The directories mkdir -p would create for `directory`, outermost first."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    return list(reversed(missing))


# ---------------------------------------------------------------- state

def state_path(settings: Settings) -> Path:
    return Layout.of(settings).config_dir / STATE_FILE


@contextmanager
def _locked(state_file: Path):
    """One apply/undo at a time: each reads the state, edits files, and writes the state."""
    state_file.parent.mkdir(parents=True, exist_ok=True)
    with open(state_file.with_name(".clients.lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _load_state(path: Path) -> dict:
    data = _read(path)
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


def _save_state(path: Path, state: dict) -> None:
    from .fsutil import atomic_write
    # 0600: it holds copies of daemon.json, which may name proxies with credentials
    atomic_write(path, json.dumps({**state, "version": STATE_VERSION}, indent=2) + "\n", mode=0o600)


# ---------------------------------------------------------------- dockerd

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


def _dockerd_flags_conflict(pid: int, keys) -> list[str]:
    """daemon.json keys dockerd's own command line sets too: it refuses such a file."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []
    flags = {REGISTRY_MIRRORS: b"--registry-mirror", INSECURE_REGISTRIES: b"--insecure-registry"}
    return [key for key in keys if any(arg.split(b"=")[0] == flags[key] for arg in argv)]


def _active_mirrors(client) -> set[str]:
    return {m.rstrip("/") for m in client.info().get("RegistryConfig", {}).get("Mirrors") or []}


def reload_docker(paths: ClientPaths, connect, *, present=(), absent=(),
                  timeout: float = RELOAD_TIMEOUT) -> str:
    """Reload dockerd and wait until its info lists `present` mirrors and none of `absent`.

    Returns what happened, for the report. dockerd keeps its old settings
    (and only logs) when it rejects daemon.json, so the engine's own answer
    is the only proof the change took.
    """
    pid = dockerd_pid(paths.docker_pid)
    if pid is None:
        return f"dockerd is not running ({paths.docker_pid}): it reads {paths.daemon_json} when it starts"
    if probes.systemd_is_pid1():
        try:
            done = subprocess.run(["systemctl", "reload", "docker"], capture_output=True, text=True,
                                  timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise DockerReloadError(f"systemctl reload docker failed: {err}") from None
        if done.returncode != 0:
            raise DockerReloadError(f"systemctl reload docker failed: {done.stderr.strip()}")
        how = "systemctl reload docker"
    else:
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as err:
            raise DockerReloadError(f"cannot signal dockerd (pid {pid}): {err.strerror}") from None
        how = f"SIGHUP to dockerd (pid {pid})"
    client = connect()
    wanted_on = {m.rstrip("/") for m in present}
    wanted_off = {m.rstrip("/") for m in absent}
    deadline = time.monotonic() + timeout
    while True:
        active = _active_mirrors(client)
        if wanted_on <= active and not wanted_off & active:
            return f"dockerd reloaded ({how}); its registry mirrors now: {sorted(active) or 'none'}"
        if time.monotonic() >= deadline:
            log = "journalctl -u docker" if probes.systemd_is_pid1() else DOCKERD_LOG
            raise DockerReloadError(
                f"dockerd did not take the registry settings of {paths.daemon_json} within "
                f"{timeout:.0f}s (its mirrors: {sorted(active) or 'none'}); it keeps its old "
                f"settings when it rejects the file: see {log}")
        time.sleep(0.2)


def _default_connect():
    from . import registry
    return registry.connect()


# ---------------------------------------------------------------- apply

def apply(settings: Settings, paths: ClientPaths = ClientPaths(), *, reload: bool = True,
          connect=None, timeout: float = RELOAD_TIMEOUT) -> Report:
    """Point dockerd and containerd at the mirrors of `settings`; record what was added.

    Everything is read, checked and planned before the first write, so an
    invalid or unwritable file stops the run with nothing changed. Running it
    again changes nothing, and takes back entries an earlier run added for
    mirrors that are no longer configured.
    """
    connect = connect or _default_connect
    if not (settings.enabled and settings.use):
        symbol = "CONFIG_USE_DOCKER_MIRROR" if settings.enabled else "CONFIG_ENABLE_DOCKER_MIRROR"
        raise MirrorNotInUse(
            f"{settings.config_path}: {symbol} is not set, so this host's clients are not pointed "
            "at the mirror; set it with 'make menuconfig', or take an earlier setup back with "
            "'make docker-mirror-clients-undo'")
    report = Report(state_path=state_path(settings))
    with _locked(report.state_path):
        state = _load_state(report.state_path)
        want = wanted(settings)
        docker_plan = _plan_docker(state.get("docker"), paths, want)
        containerd_plan, hosts_plan, stale_hosts = _plan_containerd(state, paths, want)

        writes = [p for p, _ in docker_plan["writes"]] + [p for p, _ in containerd_plan["writes"]] + \
            [Path(entry["path"]) for entry in hosts_plan["writes"]]
        for path in writes + [Path(e["path"]) for e in stale_hosts]:
            _check_writable(path)
        # every directory the writes create, outermost first, so undo can take them away again
        new_dirs = list(dict.fromkeys(d for path in writes for d in _missing_dirs(path.parent)))

        # The state goes first: if a write below fails, undo still knows
        # everything that may have been added.
        new_state = {"docker": docker_plan["record"], "containerd": containerd_plan["record"],
                     "hosts": hosts_plan["records"],
                     "created_dirs": sorted(set(state.get("created_dirs", [])) | set(map(str, new_dirs)))}
        _save_state(report.state_path, new_state)

        for directory in new_dirs:
            directory.mkdir(exist_ok=True)
        for plan in (docker_plan, containerd_plan):
            for path, data in plan["writes"]:
                saved = _backup(path) if plan["backup"] else None
                if saved:
                    report.add(f"{path}: previous version kept as {saved}")
                _write(path, data)
                report.add(f"{path}: {plan['what']}")
        for entry in hosts_plan["writes"]:
            path = Path(entry["path"])
            if entry["backup"]:
                saved = _backup(path)
                report.add(f"{path}: someone else's file, kept as {saved}")
            _write(path, entry["data"])
            report.add(f"{path}: written (mirror {entry['mirror']})")
        for entry in stale_hosts:
            report.add(_undo_hosts_file(entry))
        for line in docker_plan["notes"] + containerd_plan["notes"] + hosts_plan["notes"]:
            report.add(line)

        if reload:
            report.add(_converge_dockerd(paths, connect, want, docker_plan, timeout))
        report.add(f"recorded in {report.state_path} ('make docker-mirror-clients-undo' takes it back)")
    return report


def _plan_docker(prev: dict | None, paths: ClientPaths, want: Wanted) -> dict:
    path = paths.daemon_json
    if prev and Path(prev["path"]) != path:
        raise ClientFileError(f"the clients were set up with {prev['path']}, not {path}: "
                              "run 'make docker-mirror-clients-undo' first")
    raw = _read(path)
    current = parse_daemon_json(raw, path)
    prev_added: dict = (prev or {}).get("added", {})
    created = set((prev or {}).get("created_keys", []))
    desired = {REGISTRY_MIRRORS: want.mirrors, INSECURE_REGISTRIES: want.insecure}
    # entries an earlier run added for mirrors no longer configured (a port changed, ...)
    stale = {k: [e for e in v if e not in desired.get(k, ())] for k, v in prev_added.items()}
    stale = {k: v for k, v in stale.items() if v}
    base = unmerge_daemon_json(current, stale, created)
    new, added_now = merge_daemon_json(base, want.mirrors, want.insecure)
    added = {}
    for key in (REGISTRY_MIRRORS, INSECURE_REGISTRIES):
        kept = [e for e in prev_added.get(key, []) if e not in stale.get(key, [])]
        entries = list(dict.fromkeys(kept + added_now.get(key, [])))
        if entries:
            added[key] = entries
    created = {k for k in created if k in added} | {k for k in added_now if k not in base}
    prev_written = _unb64((prev or {}).get("written"))
    untouched_since = prev is None or raw == prev_written
    changed = new != current
    data = dump_daemon_json(new) if changed else raw
    notes = []
    if not changed:
        notes.append(f"{path}: already has the mirror settings")
    pid = dockerd_pid(paths.docker_pid)
    if changed and pid is not None:
        clash = _dockerd_flags_conflict(pid, [k for k in added_now if k not in current] + list(stale))
        if clash:
            raise ClientFileError(
                f"{path}: dockerd (pid {pid}) sets {', '.join(clash)} on its command line, and "
                f"refuses a daemon.json that sets them too; left untouched: add the mirror to "
                f"its command line instead ({', '.join(want.mirrors + want.insecure)})")
    what = "; ".join(f"added {k} {', '.join(v)}" for k, v in added_now.items())
    if stale:
        what = "; ".join(filter(None, [what, "; ".join(f"removed old {k} {', '.join(v)}"
                                                        for k, v in stale.items())]))
    return {
        "path": path,
        "writes": [(path, data)] if changed else [],
        "backup": changed and raw is not None and (prev is None or raw != prev_written),
        "what": what,
        "stale_mirrors": stale.get(REGISTRY_MIRRORS, []),
        "changed": changed,
        "notes": notes,
        "record": {
            "path": str(path),
            "docker_pid": str(paths.docker_pid),
            "original": prev["original"] if prev else _b64(raw),
            # original bytes can be put back only while nobody else changed the file
            "restorable": untouched_since and (prev or {}).get("restorable", True),
            "written": _b64(data),
            "added": added,
            "created_keys": sorted(created),
        },
    }


def _plan_containerd(state: dict, paths: ClientPaths, want: Wanted):
    prev = state.get("containerd")
    path = paths.containerd_config
    if prev and Path(prev["path"]) != path:
        raise ClientFileError(f"the clients were set up with {prev['path']}, not {path}: "
                              "run 'make docker-mirror-clients-undo' first")
    raw = _read(path)
    try:
        text = None if raw is None else raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientFileError(f"{path}: not UTF-8 text; left untouched: fix it and run again") from None
    plan = plan_containerd_config(text, str(paths.certs_dir), path)
    writes, notes = [], []
    record = prev
    if plan.new_text is not None:
        data = plan.new_text.encode("utf-8")
        writes.append((path, data))
        record = {"path": str(path), "original": _b64(raw), "written": _b64(data),
                  "inserted": plan.inserted, "certs_dir": plan.certs_dir}
        what = plan.note + ("" if raw is not None else " (there was none)") + \
            ": restart containerd to apply it"
    else:
        what = plan.note
        notes.append(f"{path}: {plan.note}")
    certs_dir = Path(plan.certs_dir)
    if not certs_dir.is_absolute():
        raise ClientFileError(f"{path}: config_path {plan.certs_dir!r} is not an absolute path; "
                              "left untouched: fix it and run again")

    prev_hosts = {entry["path"]: entry for entry in state.get("hosts", [])}
    records, host_writes, host_notes = [], [], []
    for host in want.hosts:
        file = certs_dir / host.registry / "hosts.toml"
        data = hosts_toml(host.registry, host.mirror_url, host.server).encode("utf-8")
        current = _read(file)
        before = prev_hosts.get(str(file))
        if current != data:
            ours = before is not None and current == _unb64(before["written"])
            host_writes.append({"path": str(file), "data": data, "mirror": host.mirror_url,
                                "backup": current is not None and not ours})
        else:
            host_notes.append(f"{file}: already points at {host.mirror_url}")
        records.append({"path": str(file), "written": _b64(data),
                        "original": before["original"] if before else _b64(current)})
    wanted_paths = {entry["path"] for entry in records}
    stale = [entry for path_, entry in prev_hosts.items() if path_ not in wanted_paths]
    return ({"path": path, "writes": writes, "backup": raw is not None, "what": what,
             "record": record, "notes": notes},
            {"records": records, "writes": host_writes, "notes": host_notes}, stale)


def _converge_dockerd(paths: ClientPaths, connect, want: Wanted, docker_plan: dict, timeout: float) -> str:
    pid = dockerd_pid(paths.docker_pid)
    if pid is None:
        return f"dockerd is not running ({paths.docker_pid}): it reads {paths.daemon_json} when it starts"
    if not docker_plan["changed"]:
        active = _active_mirrors(connect())
        if {m.rstrip("/") for m in want.mirrors} <= active:
            return f"dockerd already uses the mirror ({', '.join(want.mirrors)})"
    return reload_docker(paths, connect, present=want.mirrors, absent=docker_plan["stale_mirrors"],
                         timeout=timeout)


# ---------------------------------------------------------------- undo

def undo(settings: Settings, *, reload: bool = True, connect=None,
         timeout: float = RELOAD_TIMEOUT) -> Report:
    """Take back what apply recorded; files nobody changed since come back byte for byte."""
    connect = connect or _default_connect
    report = Report(state_path=state_path(settings))
    with _locked(report.state_path):
        state = _load_state(report.state_path)
        if not state:
            report.add(f"nothing to undo: no {report.state_path}")
            return report
        if state.get("docker"):
            # an unreadable daemon.json stops the undo before anything is changed
            path = Path(state["docker"]["path"])
            parse_daemon_json(_read(path), path)
        for entry in state.get("hosts", []):
            report.add(_undo_hosts_file(entry))
        if state.get("containerd"):
            report.add(_undo_containerd_config(state["containerd"]))
        if state.get("docker"):
            for line in _undo_daemon_json(state["docker"], reload, connect, timeout):
                report.add(line)
        # deepest first, once the files in them are gone
        for directory in sorted(state.get("created_dirs", []), key=lambda d: -d.count("/")):
            try:
                Path(directory).rmdir()
                report.add(f"{directory}: removed (created by docker-mirror-clients)")
            except FileNotFoundError:
                pass
            except OSError:
                report.add(f"{directory}: kept, it holds files docker-mirror-clients did not write")
        report.state_path.unlink()
        report.add(f"{report.state_path}: removed")
    return report


def _undo_hosts_file(entry: dict) -> str:
    path = Path(entry["path"])
    current = _read(path)
    original = _unb64(entry["original"])
    if current is None:
        return f"{path}: already gone"
    if current != _unb64(entry["written"]):
        return f"{path}: kept, it was changed after docker-mirror-clients wrote it"
    if original is None:
        _unlink(path)
        return f"{path}: removed"
    _write(path, original)
    return f"{path}: previous version put back"


def _undo_containerd_config(entry: dict) -> str:
    path = Path(entry["path"])
    current = _read(path)
    original = _unb64(entry["original"])
    if current == original:
        return f"{path}: as it was before docker-mirror-clients"
    if current == _unb64(entry["written"]):
        if original is None:
            _unlink(path)
            return f"{path}: removed (docker-mirror-clients had created it): restart containerd to apply"
        _write(path, original)
        return f"{path}: previous version put back: restart containerd to apply"
    if current is None or original is None:
        return f"{path}: kept as it is (changed since docker-mirror-clients wrote it)"
    # Someone changed the file since: take out only our snippet, if it is intact.
    stripped = remove_inserted(current.decode("utf-8", "replace"), entry.get("inserted") or "")
    if stripped is None:
        return (f"{path}: kept as it is, our config_path setting was changed since: "
                f"take out config_path = {entry['certs_dir']} by hand if it should go")
    _parse_toml(stripped, path)  # never write a config containerd cannot read
    saved = _backup(path)
    _write(path, stripped.encode("utf-8"))
    return f"{path}: our config_path setting taken out (previous version kept as {saved})"


def _undo_daemon_json(entry: dict, reload: bool, connect, timeout: float) -> list[str]:
    path = Path(entry["path"])
    paths = ClientPaths(daemon_json=path, docker_pid=Path(entry["docker_pid"]))
    raw = _read(path)
    current = parse_daemon_json(raw, path)
    original = _unb64(entry["original"])
    lines = []
    if entry["restorable"] and raw == _unb64(entry["written"]):
        if raw == original:
            return [f"{path}: unchanged (docker-mirror-clients had added nothing to it)"]
        target_bytes = original
        target = parse_daemon_json(original, path)
    else:
        target = unmerge_daemon_json(current, entry["added"], entry["created_keys"])
        if target == current:
            return [f"{path}: holds none of the entries docker-mirror-clients added"]
        saved = _backup(path)
        lines.append(f"{path}: changed since docker-mirror-clients wrote it; only its entries "
                     f"are taken out (previous version kept as {saved})")
        target_bytes = None if original is None and not target else dump_daemon_json(target)
    ours = entry["added"].get(REGISTRY_MIRRORS, [])
    running = reload and dockerd_pid(paths.docker_pid) is not None
    dropped = [k for k in (REGISTRY_MIRRORS, INSECURE_REGISTRIES) if k in current and k not in target]
    if running and raw != target_bytes:
        if dropped:
            # dockerd keeps its old list on reload when the key is absent from
            # the file: reload once with the keys explicitly empty, then put
            # the original bytes back (which it then reads the same way).
            _write(path, dump_daemon_json({**target, **{k: [] for k in dropped}}))
        else:
            _write_or_remove(path, target_bytes)
        lines.append(reload_docker(paths, connect, absent=ours, timeout=timeout))
    _write_or_remove(path, target_bytes)
    lines.append(f"{path}: " + ("removed (docker-mirror-clients had created it)" if target_bytes is None
                                else "previous version put back" if target_bytes == original
                                else "entries of docker-mirror-clients taken out"))
    return lines


def _write_or_remove(path: Path, data: bytes | None) -> None:
    if data is None:
        _unlink(path)
    elif _read(path) != data:
        _write(path, data)
