"""The text of containerd's client files, from templates/ (pure: reads templates only).

- `certs.d/<registry>/hosts.toml`: the mirror first, the real registry as
  `server` (the fallback);
- containerd's config.toml: its CRI registry `config_path` made to name a
  certs.d directory, editing the user's file as little as can be checked.

What the files should say is planned from the settings in
mirror.model.client_config; services.clients reads and writes them.
"""

from __future__ import annotations

import copy
import re
import textwrap
import tomllib
from dataclasses import dataclass

from . import render
from .client_origin import HOST_HOSTS_TOML, Origin
from .errors import ClientFileError
from .model.client_config import registry_server

# The CRI plugin's registry table, by containerd config version
# (1: containerd 1.x without `version`; 2: 1.x; 3: 2.x).
CRI_REGISTRY_TABLE = {
    1: ("plugins", "cri", "registry"),
    2: ("plugins", "io.containerd.grpc.v1.cri", "registry"),
    3: ("plugins", "io.containerd.cri.v1.images", "registry"),
}


def hosts_toml(registry: str, mirror_url: str, server: str | None = None, *, ca: str | None = None,
               authorization: str | None = None, origin: Origin = HOST_HOSTS_TOML) -> str:
    """containerd's certs.d/<registry>/hosts.toml: `mirror_url` first, then `server`;
    `ca`: the CA file that signs the mirror's certificate; `authorization`: a header
    value sent to the mirror (the file then holds a secret); `origin`: who wrote it
    (the header; a host's by default, whose bytes never change: client_origin)."""
    return render.render("containerd-hosts.toml.j2", registry=registry, mirror_url=mirror_url,
                         server=server or registry_server(registry), ca=ca, authorization=authorization,
                         origin=origin)


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


def parse_toml(text: str, path) -> dict:
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
    doc = parse_toml(text, path)
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
    new = copy.deepcopy(parse_toml(new_text, path))
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
