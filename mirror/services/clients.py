"""`make docker-mirror-clients` (apply) and `make docker-mirror-clients-undo` (undo).

What the clients should hold is planned in mirror.model.client_config; the
files are read and written through mirror.host.client_files, dockerd is
reloaded through mirror.engine.dockerd. What apply added is recorded (with
the original bytes of every file it changed), so undo removes exactly that:
a file nobody touched in between comes back byte for byte, and in a file
someone changed since, only our entries go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..model.settings import Settings
from ..engine import client as engine_client
from ..engine.dockerd import RELOAD_TIMEOUT, active_mirrors, reload_docker
from ..errors import ClientFileError, MirrorNotInUse
from ..host import client_files as files
from ..host.client_files import ClientPaths, b64, unb64
from ..host.layout import Layout
from ..host.proc import dockerd_flags_conflict, dockerd_pid
from . import client_hosts, client_probe, client_user_files
from .. import client_table
from ..client_text import parse_toml, plan_containerd_config, remove_inserted
from ..model.client_config import (INSECURE_REGISTRIES, REGISTRY_MIRRORS, Wanted, dump_daemon_json,
                                   merge_daemon_json, parse_daemon_json, unmerge_daemon_json, wanted)


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    state_path: Path | None = None

    def add(self, line: str) -> None:
        self.lines.append(line)


@dataclass(frozen=True)
class FilePlan:
    """One config file (daemon.json or containerd's config.toml): what to write, and its record."""

    path: Path
    writes: list[tuple[Path, bytes]]
    backup: bool                 # keep a copy of the current file before writing
    what: str                    # for the report
    record: dict | None          # what goes into the state (JSON)
    notes: list[str] = field(default_factory=list)
    changed: bool = False
    stale_mirrors: list[str] = field(default_factory=list)   # registry-mirrors entries taken out
    read_as: bytes | None = None  # the file as planned from: another edit since is not overwritten


def state_path(settings: Settings) -> Path:
    return Layout.of(settings).clients_state


def _default_connect():
    return engine_client.connect()


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
    _require_in_use(settings)
    report = Report(state_path=state_path(settings))
    with files.locked(report.state_path):
        state = files.load_state(report.state_path)
        plan = _plan(settings, paths, state)
        new_dirs = _check_writable(plan)
        new_state = _record(report, state, plan, new_dirs)
        _write(report, plan, new_dirs, new_state)
        _take_back_and_note(report, plan, paths)
        if reload:
            report.add(_converge_dockerd(paths, connect, plan.want, plan.docker, timeout))
        report.add(f"recorded in {report.state_path} ('make docker-mirror-clients-undo' takes it back)")
    return report


def _require_in_use(settings: Settings) -> None:
    if not (settings.enabled and settings.use):
        symbol = "CONFIG_USE_DOCKER_MIRROR" if settings.enabled else "CONFIG_ENABLE_DOCKER_MIRROR"
        raise MirrorNotInUse(
            f"{settings.config_path}: {symbol} is not set, so this host's clients are not pointed "
            "at the mirror; set it with 'make menuconfig', or take an earlier setup back with "
            "'make docker-mirror-clients-undo'")


@dataclass(frozen=True)
class _ApplyPlan:
    """Everything apply will write, planned from the files as read, before any write."""

    want: Wanted
    docker: FilePlan
    containerd: FilePlan
    hosts: client_hosts.HostsPlan
    merged: client_user_files.MergedPlan
    survey: list
    view: client_table.HostView

    def writes(self) -> list[Path]:
        return [p for p, _ in self.docker.writes] + [p for p, _ in self.containerd.writes] + \
            [w.path for w in self.hosts.writes] + [w[0] for w in self.merged.writes]


def _plan(settings: Settings, paths: ClientPaths, state: dict) -> _ApplyPlan:
    want = wanted(settings)
    docker_plan = _plan_docker(state.get("docker"), paths, want)
    containerd_plan, certs_dir = _plan_containerd(state.get("containerd"), paths)
    client_hosts.check_client_credential(settings)
    view = client_probe.look(paths)
    survey = client_table.survey(paths, view)
    owned, merged_wants = _client_files(survey, want, paths)
    hosts_plan = client_hosts.plan(state.get("hosts", []), certs_dir, want, paths, client_hosts.read_ca(want),
                                   extra=owned)
    merged_plan = client_user_files.plan(state.get("merged", []), merged_wants)
    return _ApplyPlan(want, docker_plan, containerd_plan, hosts_plan, merged_plan, survey, view)


def _check_writable(plan: _ApplyPlan) -> list[Path]:
    """Stop before the first write if any file cannot be written; the directories the writes
    create, outermost first, so undo can take them away again."""
    writes = plan.writes()
    for path in writes + [Path(e["path"]) for e in plan.hosts.stale + plan.merged.stale]:
        files.check_writable(path)
    return list(dict.fromkeys(d for path in writes for d in files.missing_dirs(path.parent)))


def _record(report: Report, state: dict, plan: _ApplyPlan, new_dirs: list[Path]) -> dict:
    """Save the state before any write: if a write fails, undo still knows everything that may
    have been added. The state holds the plans' own records, so a backup noted in one of them
    later is saved with the next save_state."""
    new_state = {"docker": plan.docker.record, "containerd": plan.containerd.record,
                 "hosts": plan.hosts.records, "merged": plan.merged.records,
                 "created_dirs": sorted(set(state.get("created_dirs", [])) | set(map(str, new_dirs)))}
    unchanged_since_planned((plan.docker, plan.containerd))
    for path, raw in plan.merged.reads.items():
        if files.read(path) != raw:
            raise ClientFileError(f"{path} changed while docker-mirror-clients was reading it; "
                                  "nothing was written: run it again")
    files.save_state(report.state_path, new_state)
    return new_state


def _write(report: Report, plan: _ApplyPlan, new_dirs: list[Path], new_state: dict) -> None:
    """Write every planned file, each backup recorded (and saved) before its file is replaced."""
    for directory in new_dirs:
        directory.mkdir(exist_ok=True)
    for file_plan in (plan.docker, plan.containerd):
        for path, data in file_plan.writes:
            saved = files.backup(path) if file_plan.backup else None
            if saved:
                report.add(f"{path}: previous version kept as {saved}")
                file_plan.record.setdefault("backups", []).append(str(saved))  # undo drops it
                files.save_state(report.state_path, new_state)
            files.write(path, data)
            report.add(f"{path}: {file_plan.what}")
    for write in plan.hosts.writes:
        if write.backup:
            saved = files.backup(write.path)
            report.add(f"{write.path}: someone else's file, kept as {saved}")
            client_hosts.record_backup(plan.hosts, write.path, saved)   # undo drops it
            files.save_state(report.state_path, new_state)
        files.write(write.path, write.data, secret=write.secret)
        report.add(f"{write.path}: written ({write.mirror})")
    for path, data, backup, secret in plan.merged.writes:
        if backup:
            saved = files.backup(path)
            report.add(f"{path}: previous version kept as {saved}")
            client_hosts.record_backup(plan.merged, path, saved)   # undo drops it
            files.save_state(report.state_path, new_state)
        files.write(path, data, secret=secret)
        report.add(f"{path}: our entries merged in")


def _take_back_and_note(report: Report, plan: _ApplyPlan, paths: ClientPaths) -> None:
    """Take back what an earlier run added and this one no longer wants; then the notes."""
    for entry in plan.hosts.stale:
        report.add(client_hosts.undo_file(entry))
    for entry in plan.merged.stale:
        report.add(client_user_files.undo(entry))
    for line in plan.docker.notes + plan.containerd.notes + plan.hosts.notes + plan.merged.notes:
        report.add(line)
    failed = plan.merged.failed   # clients whose file cannot be edited safely, and why
    for line in _client_notes(plan.survey, plan.want, paths, plan.view) + client_lines(plan.survey, failed):
        report.add(line)


def _client_files(survey, want: Wanted, paths: ClientPaths):
    """The files of every client found: whole files of ours, and files to merge into."""
    owned, merged = [], []
    for found in survey:
        if found.state != "configure" or found.client.files is None:
            continue
        for want_file in found.client.files(want, paths):
            (merged.append((found.client.key, want_file)) if want_file.merge else owned.append(want_file))
    return owned, merged


def _client_notes(survey, want: Wanted, paths: ClientPaths, view: client_table.HostView) -> list[str]:
    return [note for found in survey if found.state == "configure" and found.client.notes
            for note in found.client.notes(want, paths, view.seen)]


def client_lines(survey, failed: dict[str, str]) -> list[str]:
    """One line per known client: configured, absent, or not configured and why."""
    lines = []
    for found in survey:
        name = found.client.name
        if found.state == "absent":
            lines.append(f"client {name}: absent ({found.why})")
        elif found.state == "blocked" or found.client.key in failed:
            lines.append(f"client {name}: NOT configured: {failed.get(found.client.key) or found.why}")
        else:
            lines.append(f"client {name}: configured ({found.why}); credentials: {found.client.credentials}")
    return lines


def unchanged_since_planned(plans) -> None:
    """Refuse, before anything is written, a file someone edited since it was read."""
    for plan in plans:
        if plan.writes and files.read(plan.path) != plan.read_as:
            raise ClientFileError(f"{plan.path} changed while docker-mirror-clients was reading it; "
                                  "nothing was written: run it again")


def _plan_docker(prev: dict | None, paths: ClientPaths, want: Wanted) -> FilePlan:
    path = paths.daemon_json
    if prev and Path(prev["path"]) != path:
        raise ClientFileError(f"the clients were set up with {prev['path']}, not {path}: "
                              "run 'make docker-mirror-clients-undo' first")
    raw = files.read(path)
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
    prev_written = unb64((prev or {}).get("written"))
    untouched_since = prev is None or raw == prev_written
    changed = new != current
    data = dump_daemon_json(new) if changed else raw
    notes = []
    if not changed:
        notes.append(f"{path}: already has the mirror settings")
    pid = dockerd_pid(paths.docker_pid)
    if changed and pid is not None:
        clash = dockerd_flags_conflict(pid, [k for k in added_now if k not in current] + list(stale))
        if clash:
            raise ClientFileError(
                f"{path}: dockerd (pid {pid}) sets {', '.join(clash)} on its command line, and "
                f"refuses a daemon.json that sets them too; left untouched: add the mirror to "
                f"its command line instead ({', '.join(want.mirrors + want.insecure)})")
    what = "; ".join(f"added {k} {', '.join(v)}" for k, v in added_now.items())
    if stale:
        what = "; ".join(filter(None, [what, "; ".join(f"removed old {k} {', '.join(v)}"
                                                        for k, v in stale.items())]))
    return FilePlan(
        path=path,
        writes=[(path, data)] if changed else [],
        backup=changed and raw is not None and (prev is None or raw != prev_written),
        what=what,
        stale_mirrors=stale.get(REGISTRY_MIRRORS, []),
        changed=changed,
        notes=notes,
        record={
            "path": str(path),
            "docker_pid": str(paths.docker_pid),
            "original": prev["original"] if prev else b64(raw),
            # original bytes can be put back only while nobody else changed the file
            "restorable": untouched_since and (prev or {}).get("restorable", True),
            "written": b64(data),
            "added": added,
            "created_keys": sorted(created),
            "backups": (prev or {}).get("backups", []),
        },
        read_as=raw,
    )


def _plan_containerd(prev: dict | None, paths: ClientPaths) -> tuple[FilePlan, Path]:
    """containerd's config.toml, and the certs.d directory its config_path names."""
    path = paths.containerd_config
    if prev and Path(prev["path"]) != path:
        raise ClientFileError(f"the clients were set up with {prev['path']}, not {path}: "
                              "run 'make docker-mirror-clients-undo' first")
    raw = files.read(path)
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
        record = {"path": str(path), "original": b64(raw), "written": b64(data),
                  "inserted": plan.inserted, "certs_dir": plan.certs_dir}
        what = plan.note + ("" if raw is not None else " (there was none)") + \
            ": " + client_hosts.restart_hint(path)
    else:
        what = plan.note
        notes.append(f"{path}: {plan.note}")
    certs_dir = Path(plan.certs_dir)
    if ":" in plan.certs_dir:
        # containerd 1.x's CRI reads every directory of a colon-separated config_path; 2.x's
        # transfer-service pull path takes the value as one directory (containerd #12808)
        certs_dir = Path(plan.certs_dir.split(":")[0])
        notes.append(f"{path}: config_path {plan.certs_dir} names several directories: hosts.toml go "
                     f"in the first, {certs_dir}; containerd 2.x's transfer-service pulls take the whole "
                     "value as one directory and would not find them (containerd #12808): "
                     "set config_path to one directory")
    if not certs_dir.is_absolute():
        raise ClientFileError(f"{path}: config_path {plan.certs_dir!r} is not an absolute path; "
                              "left untouched: fix it and run again")
    return FilePlan(path, writes, raw is not None, what, record, notes, read_as=raw), certs_dir


def _converge_dockerd(paths: ClientPaths, connect, want: Wanted, docker_plan: FilePlan, timeout: float) -> str:
    pid = dockerd_pid(paths.docker_pid)
    if pid is None:
        return f"dockerd is not running ({paths.docker_pid}): it reads {paths.daemon_json} when it starts"
    if not docker_plan.changed:
        active = active_mirrors(connect())
        if {m.rstrip("/") for m in want.mirrors} <= active:
            return f"dockerd already uses the mirror ({', '.join(want.mirrors)})"
    return reload_docker(paths, connect, present=want.mirrors, absent=docker_plan.stale_mirrors,
                         timeout=timeout)


# ---------------------------------------------------------------- undo

def undo(settings: Settings, *, reload: bool = True, connect=None,
         timeout: float = RELOAD_TIMEOUT) -> Report:
    """Take back what apply recorded; files nobody changed since come back byte for byte."""
    connect = connect or _default_connect
    report = Report(state_path=state_path(settings))
    with files.locked(report.state_path):
        state = files.load_state(report.state_path)
        if not state:
            report.add(f"nothing to undo: no {report.state_path}")
            return report
        if state.get("docker"):
            # an unreadable daemon.json stops the undo before anything is changed
            path = Path(state["docker"]["path"])
            parse_daemon_json(files.read(path), path)
        for entry in state.get("merged", []):
            report.add(client_user_files.undo(entry))
        for entry in state.get("hosts", []):
            report.add(client_hosts.undo_file(entry))
        if state.get("containerd"):
            report.add(_undo_containerd_config(state["containerd"]))
        if state.get("docker"):
            for line in _undo_daemon_json(state["docker"], reload, connect, timeout):
                report.add(line)
        for kept in files.drop_backups(state.get("containerd")) + files.drop_backups(state.get("docker")):
            report.add(f"{kept}: removed (the file holds that version again)")
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


def _undo_containerd_config(entry: dict) -> str:
    """Our config_path setting out of containerd's config; a file we created and someone
    changed since is kept whole."""
    def take_out(text: str) -> str | None:
        stripped = remove_inserted(text, entry.get("inserted") or "")
        if stripped is not None:
            parse_toml(stripped, entry["path"])  # never write a config containerd cannot read
        return stripped
    strip = None if entry["original"] is None else files.Strip(
        take_out, "our config_path setting", f"take out config_path = {entry['certs_dir']} by hand if it should go")
    return files.undo_recorded(entry, strip, then=lambda: client_hosts.restart_hint(Path(entry["path"])))


def _undo_daemon_json(entry: dict, reload: bool, connect, timeout: float) -> list[str]:
    path = Path(entry["path"])
    paths = ClientPaths(daemon_json=path, docker_pid=Path(entry["docker_pid"]))
    raw = files.read(path)
    current = parse_daemon_json(raw, path)
    original = unb64(entry["original"])
    lines = []
    if entry["restorable"] and raw == unb64(entry["written"]):
        if raw == original:
            return [f"{path}: unchanged (docker-mirror-clients had added nothing to it)"]
        target_bytes = original
        target = parse_daemon_json(original, path)
    else:
        target = unmerge_daemon_json(current, entry["added"], entry["created_keys"])
        if target == current:
            return [f"{path}: holds none of the entries docker-mirror-clients added"]
        saved = files.backup(path)
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
            files.write(path, dump_daemon_json({**target, **{k: [] for k in dropped}}))
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
        files.unlink(path)
    elif files.read(path) != data:
        files.write(path, data)
