"""Our entries merged into a client file the user may own (buildkitd.toml, registries.yaml).

Never rewritten whole: our text is added (appended, or inserted right under
an existing top-level key), the result is parsed again and must equal the
user's document plus our entries and nothing else, and the pieces added are
returned so undo can take exactly them out. A registry the user configured
already is left to the user (said in the notes). Pure: text in, text out.
"""

from __future__ import annotations

import re
import textwrap
import tomllib
from dataclasses import dataclass, field

import yaml

from . import render
from .errors import ClientFileError


@dataclass(frozen=True)
class Merge:
    text: str                                   # the file to write (== the input: nothing to add)
    inserted: list[str] = field(default_factory=list)   # the pieces added, each to be found once by undo
    notes: list[str] = field(default_factory=list)


def _toml(text: str, path) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ClientFileError(f"{path}: not valid TOML: {err}; left untouched: fix it and run again") from None


def _yaml(text: str, path) -> dict:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ClientFileError(f"{path}: not valid YAML{where}; left untouched: fix it and run again") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ClientFileError(f"{path}: holds a YAML {type(doc).__name__}, not a mapping; left untouched")
    return doc


def _table(doc: dict, key: str, path, kind="table") -> dict:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        # the type only: a user's file may hold credentials, never echoed
        raise ClientFileError(f"{path}: {key} is a {type(value).__name__}, not a {kind}; "
                              "left untouched: fix it and run again")
    return value


def _split_ours(hosts, theirs: dict, said) -> tuple[list, list[str]]:
    """The hosts whose registry the file does not configure yet (ours to add), and a note for
    each one it does (left to the user: `said(host)`)."""
    ours, notes = [], []
    for host in hosts:
        if host.registry in theirs:
            notes.append(said(host))
        else:
            ours.append(host)
    return ours, notes


def already_ours(kind: str, text: str | None, hosts) -> set[str]:
    """The registries whose entry in `text` names our mirror already (a run before wrote it,
    where no state says so: a fleet host): BuildKit's `mirrors` holding the host's address,
    k3s' `endpoint` holding its URL. A file that does not parse: none (the merge says why)."""
    if text is None:
        return set()
    try:
        if kind == "buildkit":
            tables = _table(_toml(text, ""), "registry", "")
            return {h.registry for h in hosts if h.address in (tables.get(h.registry) or {}).get("mirrors", [])}
        mirrors = _table(_yaml(text, ""), "mirrors", "", "mapping")
        return {h.registry for h in hosts if h.mirror_url in (mirrors.get(h.registry) or {}).get("endpoint", [])}
    except (ClientFileError, AttributeError, TypeError):   # not a shape we wrote
        return set()


def remove(text: str, inserted: list[str]) -> str | None:
    """`text` without every piece of `inserted`, or None when one is not there exactly once."""
    for piece in inserted:
        if text.count(piece) != 1:
            return None
        text = text.replace(piece, "", 1)
    return text


# ---------------------------------------------------------------- BuildKit

def buildkit(text: str | None, hosts, ca: dict[str, str], path) -> Merge:
    """buildkitd.toml: `[registry."<registry>"] mirrors = ["HOST:PORT"]` (bare hosts, not URLs),
    and for each mirror `[registry."HOST:PORT"]` with `http = true` or `ca = [...]`."""
    doc = _toml(text or "", path)
    registries = _table(doc, "registry", path)
    ours, notes = _split_ours(hosts, registries, lambda h: (
        f"{path}: has its own [registry.\"{h.registry}\"]: left as it is "
        f"(add mirrors = [\"{h.address}\"] there by hand)"))
    mirrors = [h for h in ours if h.address not in registries]
    if not ours:
        return Merge(text or "", [], notes)
    piece = render.render("buildkitd-registry.toml.j2", hosts=ours, mirrors=mirrors, ca=ca)
    if text is None:
        piece = "# Written by docker-mirror: there was no buildkitd.toml here.\n" + piece.lstrip("\n")
    elif text and not text.endswith("\n"):
        piece = "\n" + piece
    new = (text or "") + piece
    expected = {**doc, "registry": {**registries, **_toml(piece, path)["registry"]}}
    if _toml(new, path) != expected:
        raise ClientFileError(f"{path}: our [registry] tables could not be added without changing "
                              "anything else (an unusual layout); left untouched: add them by hand")
    return Merge(new, [piece], notes)


# ---------------------------------------------------------------- k3s / RKE2

def _section_line(text: str, key: str) -> re.Match | None:
    found = list(re.finditer(rf"^{re.escape(key)}[ \t]*:[ \t]*(#.*)?$\n?", text, re.M))
    return found[0] if len(found) == 1 else None


def _child_indent(text: str, after: int) -> int:
    for line in text[after:].splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            indent = len(line) - len(line.lstrip(" "))
            return indent if indent else 2
    return 2


def k3s(text: str | None, hosts, ca: dict[str, str], credential, path) -> Merge:
    """registries.yaml: `mirrors: <registry>: endpoint: [mirror URL]` and, with a client user
    or a CA, `configs: "HOST:PORT": {auth: {username, password}, tls: {ca_file}}`."""
    doc = _yaml(text or "", path)
    mirrors_now = _table(doc, "mirrors", path, "mapping")
    configs_now = _table(doc, "configs", path, "mapping")
    ours, notes = _split_ours(hosts, mirrors_now, lambda h: (
        f"{path}: has its own mirrors for {h.registry}: left as they are "
        f"(add endpoint {h.mirror_url} there by hand)"))
    wants_config = credential is not None or bool(ca)
    configs = [h for h in ours if wants_config and h.address not in configs_now
               and (credential is not None or h.address in ca)]
    if not ours:
        return Merge(text or "", [], notes)
    context = dict(hosts=ours, configs=configs, ca=ca, credential=credential)
    if not (text or "").strip():
        whole = render.render("k3s-registries.yaml.j2", part="file", **context)
        new = (text or "") + whole
        inserted = [whole]
    else:
        new, inserted = text, []
        for key, entries in (("mirrors", ours), ("configs", configs)):
            if not entries:
                continue
            block = render.render("k3s-registries.yaml.j2", part=key, **context)
            if key not in doc:
                piece = ("" if new.endswith("\n") else "\n") + f"{key}:\n" + textwrap.indent(block, "  ")
                new += piece
            else:
                header = _section_line(new, key)
                if header is None:
                    raise ClientFileError(f"{path}: its {key}: is written in a form this tool does not edit "
                                          f"(flow style, or not at the top level); left untouched: "
                                          f"add our entries by hand")
                if not header.group(0).endswith("\n"):
                    raise ClientFileError(f"{path}: ends in '{key}:' without a newline; left untouched")
                piece = textwrap.indent(block, " " * _child_indent(new, header.end()))
                new = new[:header.end()] + piece + new[header.end():]
            inserted.append(piece)
    expected = dict(doc)
    parsed_ours = _yaml(render.render("k3s-registries.yaml.j2", part="file", **context), path)
    for key in ("mirrors", "configs"):
        if parsed_ours.get(key):
            expected[key] = {**(doc.get(key) or {}), **parsed_ours[key]}
    if _yaml(new, path) != expected:
        raise ClientFileError(f"{path}: our entries could not be added without changing anything else "
                              "(an unusual layout); left untouched: add them by hand")
    return Merge(new, inserted, notes)
