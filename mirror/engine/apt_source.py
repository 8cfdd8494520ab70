"""A deb-src source of the product's own, so `apt-get source docker-registry` works.

The registry engine is built from the distribution's source package
(mirror.engine.build), which apt fetches only through a `deb-src` source.
Many machines have `deb` sources only. This module adds one file of its own,
/etc/apt/sources.list.d/docker-mirror-src.sources, naming the archive and
suite the machine's `deb` source of docker-registry names (Debian's main
archive, Ubuntu's archive with universe); it never edits the user's files,
writes nothing when a deb-src source for that archive and suite is already
there, and removes its own file when another source covers it.

Standard library only: scripts/install-deps.sh runs it with the system's
python3 before the one `apt-get update`, when the project's venv may not
exist yet (`python3 -m mirror.engine.apt_source`; it prints the file when
it wrote or removed it, nothing otherwise).
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
from dataclasses import dataclass

APT_DIR = "/etc/apt"
OWN_FILE = "sources.list.d/docker-mirror-src.sources"
PACKAGE = "docker-registry"

# One-line options ([signed-by=... trusted=yes]) and their deb822 field names;
# arch= says nothing to a deb-src source.
_OPTIONS = {"signed-by": "Signed-By", "trusted": "Trusted", "check-valid-until": "Check-Valid-Until",
            "allow-insecure": "Allow-Insecure", "allow-weak": "Allow-Weak"}


@dataclass(frozen=True)
class Entry:
    """One apt source: a one-line `deb` line, or a deb822 stanza, as apt reads it."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    options: tuple[tuple[str, str], ...] = ()   # (deb822 field, raw value), e.g. Signed-By
    enabled: bool = True


def parse_deb822(text: str) -> list[Entry]:
    """The stanzas of a .sources file (comments dropped, continuation lines kept)."""
    entries = []
    for block in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        name = None
        for line in block.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and name:
                fields[name] += "\n" + line
                continue
            name, _, value = line.partition(":")
            name = name.strip()
            fields[name] = value.strip()
        lower = {k.lower(): v for k, v in fields.items()}
        if "types" not in lower or "uris" not in lower:
            continue
        known = {"types", "uris", "suites", "components", "enabled"}
        entries.append(Entry(
            types=tuple(lower["types"].split()), uris=tuple(lower["uris"].split()),
            suites=tuple(lower.get("suites", "").split()), components=tuple(lower.get("components", "").split()),
            options=tuple((k, v) for k, v in fields.items() if k.lower() not in known),
            enabled=lower.get("enabled", "yes").strip().lower() not in ("no", "false", "0")))
    return entries


def parse_one_line(text: str) -> list[Entry]:
    """The entries of a sources.list file: `deb[-src] [opts] URI SUITE [COMPONENT...]`."""
    entries = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        options = []
        found = re.match(r"^(\S+)\s+\[([^\]]*)\]\s+(.*)$", line)
        if found:
            kind, opts, rest = found.groups()
            for opt in opts.split():
                key, _, value = opt.partition("=")
                if key in _OPTIONS:
                    options.append((_OPTIONS[key], value))
        else:
            kind, _, rest = line.partition(" ")
        words = rest.split()
        if kind not in ("deb", "deb-src") or len(words) < 2:
            continue
        entries.append(Entry((kind,), (words[0],), (words[1],), tuple(words[2:]), tuple(options)))
    return entries


def _same_uri(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def policy_origins(policy_text: str) -> list[tuple[str, str]]:
    """(URI, suite) of each archive `apt-cache policy PACKAGE` lists for the package
    (`500 http://deb.debian.org/debian bookworm/main amd64 Packages`)."""
    found = re.findall(r"^\s*-?\d+\s+(\S+://\S+)\s+(\S+?)/\S+\s+\S+\s+Packages\s*$", policy_text, re.MULTILINE)
    return list(dict.fromkeys(found))


def wanted(entries: list[Entry], codename: str, origins: list[tuple[str, str]]) -> list[Entry]:
    """The deb-src entries to add: one per `deb` source of the package's archive.

    The archive is the one apt says holds docker-registry (`origins`, from
    apt-cache policy); with no package lists yet (a fresh container), the
    `deb` sources of the release's own suite (`codename`) with a main
    component. Nothing when an enabled deb-src source already covers it.
    """
    debs = [e for e in entries if e.enabled and "deb" in e.types]
    chosen: list[tuple[Entry, str, str]] = []
    for entry in debs:
        for uri in entry.uris:
            for suite in entry.suites:
                if origins:
                    hit = any(_same_uri(uri, o_uri) and suite == o_suite for o_uri, o_suite in origins)
                else:
                    hit = suite == codename and "main" in entry.components
                if hit:
                    chosen.append((entry, uri, suite))
    result = []
    for entry, uri, suite in chosen:
        covered = any(e.enabled and "deb-src" in e.types and suite in e.suites
                      and any(_same_uri(uri, u) for u in e.uris)
                      and set(entry.components) <= set(e.components) for e in entries)
        if not covered:
            result.append(Entry(("deb-src",), (uri,), (suite,), entry.components, entry.options))
    return list(dict.fromkeys(result))


def dump_deb822(entries: list[Entry]) -> str:
    """deb822 stanzas, fields in apt's usual order (a serializer, as json.dumps)."""
    stanzas = []
    for e in entries:
        fields = [("Types", " ".join(e.types)), ("URIs", " ".join(e.uris)), ("Suites", " ".join(e.suites)),
                  ("Components", " ".join(e.components)), *e.options]
        stanzas.append("".join(f"{name}: {value}\n" for name, value in fields))
    header = ("# Written by docker-mirror (mirror/engine/apt_source.py): the source package of\n"
              f"# {PACKAGE}, from which the registry engine is built. Safe to delete.\n")
    return header + "\n".join(stanzas)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def machine_entries(apt_dir: str = APT_DIR) -> list[Entry]:
    """Every source apt reads, except the product's own file."""
    own = os.path.join(apt_dir, OWN_FILE)
    entries = parse_one_line(_read(os.path.join(apt_dir, "sources.list")))
    for path in sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.list"))):
        entries += parse_one_line(_read(path))
    for path in sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.sources"))):
        if os.path.abspath(path) != os.path.abspath(own):
            entries += parse_deb822(_read(path))
    return entries


def codename(os_release: str = "/etc/os-release") -> str:
    values = dict(re.findall(r"^([A-Z_]+)=\"?([^\"\n]*)\"?$", _read(os_release), re.MULTILINE))
    return values.get("VERSION_CODENAME") or values.get("UBUNTU_CODENAME", "")


def apt_policy(package: str = PACKAGE) -> str:
    """`apt-cache policy` reads the local package lists: no network."""
    try:
        return subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True,
                              timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def ensure(apt_dir: str = APT_DIR, os_release: str = "/etc/os-release", policy: str | None = None) -> str:
    """Write, rewrite or remove the product's own deb-src file as needed.

    Returns what was done ("" when nothing: the file was right, or not needed).
    Raises OSError when the file cannot be written (not root).
    """
    own = os.path.join(apt_dir, OWN_FILE)
    add = wanted(machine_entries(apt_dir), codename(os_release),
                 policy_origins(apt_policy() if policy is None else policy))
    present = _read(own) if os.path.exists(own) else None
    if not add:
        if present is not None:
            os.unlink(own)
            return f"removed {own} (another deb-src source covers {PACKAGE})"
        return ""
    text = dump_deb822(add)
    if present == text:
        return ""
    os.makedirs(os.path.dirname(own), exist_ok=True)
    tmp = f"{own}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, own)
    return f"wrote {own} (deb-src {', '.join(f'{e.uris[0]} {e.suites[0]}' for e in add)})"


def main() -> int:
    try:
        done = ensure()
    except OSError as err:
        print(f"error: cannot write {os.path.join(APT_DIR, OWN_FILE)}: {err.strerror} (run as root)",
              file=sys.stderr)
        return 3
    if done:
        print(done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
