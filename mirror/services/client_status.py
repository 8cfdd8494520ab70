"""Per client on this host: found or not, and whether it is pointed at the mirror
(`make docker-mirror-status`). Reads files only, never writes; no secret enters the rows.

"Pointed" means the files the client reads hold what `docker-mirror-clients` would write
for the current settings: daemon.json lists the Docker Hub mirror, every hosts.toml names
its mirror, a drop-in or CA is byte for byte ours, our entries are in a merged file.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ClientFileError
from ..host import client_files as files
from ..host.client_files import ClientPaths
from ..host.layout import Layout
from .. import client_table
from ..model.client_config import REGISTRY_MIRRORS, parse_daemon_json, wanted
from . import client_hosts, client_probe
from ..model.settings import Settings


def rows(settings: Settings, paths: ClientPaths | None = None) -> list[dict]:
    paths = paths or ClientPaths.host()
    want = wanted(settings)
    try:
        state = files.load_state(Layout.of(settings).clients_state)
    except ClientFileError:
        state = {}
    out = []
    for found in client_table.survey(paths, client_probe.look(paths)):
        row = {"client": found.client.name, "key": found.client.key, "found": found.state != "absent",
               "pointed": None, "why": found.why}
        if found.state == "configure":
            try:
                missing = _missing(found.client, want, paths, state)
            except (ClientFileError, OSError) as err:
                missing = [str(err)]
            row["pointed"] = not missing
            row["why"] = "; ".join(missing) if missing else found.why
        out.append(row)
    return out


def _missing(client, want, paths: ClientPaths, state: dict) -> list[str]:
    """What the client's files lack (empty: pointed at the mirror)."""
    if client.key == "docker":
        # the checks dockerd's own parse makes (an object, lists of strings): a ClientFileError
        listed = {m.rstrip("/") for m in parse_daemon_json(files.read(paths.daemon_json), paths.daemon_json)
                  .get(REGISTRY_MIRRORS, [])}
        return [f"{paths.daemon_json} lacks registry-mirrors {m}" for m in want.mirrors if m.rstrip("/") not in listed]
    if client.key == "containerd":
        certs_dir = Path((state.get("containerd") or {}).get("certs_dir") or paths.certs_dir)
        return [f"{certs_dir / h.registry / 'hosts.toml'} does not name {h.mirror_url}" for h in want.hosts
                if h.mirror_url not in (files.read(certs_dir / h.registry / "hosts.toml") or b"").decode("utf-8", "replace")]
    merged = {entry["path"]: entry for entry in state.get("merged", [])}
    missing = []
    for want_file in client.files(want, paths):
        current = files.read(want_file.path)
        if want_file.merge is None:
            if current != (client_hosts.read_ca(want) if want_file.ca_copy else want_file.data):
                missing.append(f"{want_file.path} does not hold {want_file.what}")
            continue
        entry = merged.get(str(want_file.path))
        text = (current or b"").decode("utf-8", "replace")
        if entry is None or not all(piece in text for piece in entry["inserted"]):
            missing.append(f"{want_file.path} lacks our entries")
    return missing
