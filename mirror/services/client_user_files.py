"""Client files the user may own and docker-mirror-clients edits (buildkitd.toml, registries.yaml).

Planned from mirror.client_table (FileWant.merge) and mirror.client_merge (the
merging itself, pure text); this module reads the files and plans the writes.
Each is recorded with its original bytes, the bytes written and the pieces
added: undo puts the original back when nobody changed the file since, and
otherwise takes out exactly our pieces (the user's later edits stay). A
client whose file cannot be edited safely is reported as not configured,
with the reason; the other clients go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ClientFileError
from ..host import client_files as files
from ..host.client_files import b64, unb64
from .. import client_merge


@dataclass
class MergedPlan:
    records: list[dict] = field(default_factory=list)
    writes: list[tuple[Path, bytes, bool, bool]] = field(default_factory=list)   # path, data, backup, secret
    notes: list[str] = field(default_factory=list)
    stale: list[dict] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)   # client key -> why it is not configured
    reads: dict[Path, bytes | None] = field(default_factory=dict)  # as planned from


def plan(prev_records: list[dict], wants) -> MergedPlan:
    """`wants`: (client key, FileWant with a merge) pairs."""
    prev = {entry["path"]: entry for entry in prev_records}
    out = MergedPlan()
    for key, want in wants:
        try:
            _plan_one(out, key, want, prev.get(str(want.path)))
        except ClientFileError as err:
            out.failed[key] = str(err)
            if str(want.path) in prev:       # keep what undo needs to know
                out.records.append(prev[str(want.path)])
    planned = {entry["path"] for entry in out.records}
    out.stale = [entry for path, entry in prev.items() if path not in planned]
    return out


def _plan_one(out: MergedPlan, key: str, want, before: dict | None) -> None:
    raw = files.read(want.path)
    out.reads[want.path] = raw
    try:
        text = None if raw is None else raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientFileError(f"{want.path}: not UTF-8 text; left untouched") from None
    base = text
    if before is not None and text is not None:
        if raw == unb64(before["written"]):
            original = unb64(before["original"])
            base = None if original is None else original.decode("utf-8")
        else:
            base = client_merge.remove(text, before["inserted"])
            if base is None:
                raise ClientFileError(f"{want.path}: our entries were changed since docker-mirror-clients "
                                      "wrote them; left untouched: fix them by hand, or run "
                                      "'make docker-mirror-clients-undo' and again")
    merged = want.merge(base)
    out.notes.extend(merged.notes)
    if not merged.inserted:
        if before is not None:   # ours, no longer wanted in this file: undo takes it out
            out.stale.append(before)
        return
    data = merged.text.encode("utf-8")
    lax = raw is not None and want.secret and want.path.stat().st_mode & 0o077
    if data != raw or lax:
        ours = before is not None and raw == unb64(before["written"])
        out.writes.append((want.path, data, raw is not None and not ours and data != raw, want.secret))
    mode = want.path.stat().st_mode & 0o7777 if raw is not None else None
    out.records.append({"path": str(want.path), "client": key,
                        "original": before["original"] if before else b64(raw),
                        "mode": before.get("mode") if before else mode,   # a password made it 0600
                        "written": b64(data), "inserted": merged.inserted,
                        "backups": (before or {}).get("backups", [])})


def undo(entry: dict) -> str:
    """The original back when nobody changed the file since; else exactly our pieces out."""
    return files.undo_recorded(entry, files.Strip(
        lambda text: client_merge.remove(text, entry["inserted"]), "our entries", "take them out by hand"))
