"""Reading a kconfiglib `.config` into typed values that remember their line.

Only the .config is read (no Kconfig parse, no probes): loading settings is
cheap and never touches the network.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DotConfigSyntaxError, MirrorError, NotConfiguredError

PREFIX = "CONFIG_"

_SET = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")
_STRING = re.compile(r'^"((?:[^"\\]|\\.)*)"$')
_UNESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class Entry:
    name: str  # without the CONFIG_ prefix
    value: bool | int | str
    line: int
    origin: str = ""  # where an override came from, instead of a .config line


@dataclass(frozen=True)
class DotConfig:
    path: str
    entries: dict[str, Entry]

    def source(self, name: str) -> str:
        """'FILE:LINE' where the symbol is set, for error messages."""
        entry = self.entries.get(name)
        if entry is None:
            return f"{self.path} (not set)"
        return entry.origin or f"{self.path}:{entry.line}"

    def with_values(self, values: dict[str, bool | int | str], origin: str) -> "DotConfig":
        """A copy with symbols overridden (e.g. from the command line), validated as the rest."""
        entries = dict(self.entries)
        for name, value in values.items():
            entries[name] = Entry(name, value, 0, origin)
        return DotConfig(self.path, entries)

    def strings_named(self, suffix: str) -> list[tuple[str, str]]:
        """(value, 'file:line') of every non-empty string symbol whose name ends with `suffix`."""
        return [(entry.value, self.source(name)) for name, entry in self.entries.items()
                if name.endswith(suffix) and isinstance(entry.value, str) and entry.value]


def _parse_value(raw: str) -> bool | int | str | None:
    if raw in ("y", "m"):
        return True
    if raw == "n":
        return False
    string = _STRING.match(raw)
    if string:
        return _UNESCAPE.sub(r"\1", string.group(1))  # as kconfiglib unescapes
    if re.fullmatch(r"-?[0-9]+", raw):
        return int(raw)
    if re.fullmatch(r"0[xX][0-9a-fA-F]+", raw):
        return int(raw, 16)
    return None


def parse(text: str, path: str = ".config") -> DotConfig:
    entries: dict[str, Entry] = {}
    # Split on \n only, as kconfiglib reads: str.splitlines() would also split
    # inside values holding \x0b, \x1c, \u2028 and the like.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        unset = _UNSET.match(line)
        if unset:
            entries[unset.group(1)] = Entry(unset.group(1), False, number)
            continue
        if line.startswith("#"):
            continue
        assignment = _SET.match(line)
        value = _parse_value(assignment.group(2)) if assignment else None
        if value is None:
            raise DotConfigSyntaxError(
                f"{path}:{number}: cannot read {_shown(line)}: expected CONFIG_NAME=y, "
                'CONFIG_NAME=123 or CONFIG_NAME="text" (run \'make olddefconfig\' '
                "to rewrite the file)")
        entries[assignment.group(1)] = Entry(assignment.group(1), value, number)
    return DotConfig(path, entries)


def _shown(line: str) -> str:
    """A bad line as an error may echo it: a secret's value hidden, a long line cut."""
    secret = re.match(r"\s*(CONFIG_\w*(?:_PASSWORD|_ACCOUNT_KEY|_SECRET_KEY))\s*=", line)
    if secret or re.search(r"://[^/\s]*@", line):
        return repr(f"{secret.group(1) if secret else line.split('=', 1)[0]}=<hidden>")
    return repr(line if len(line) <= 120 else line[:120] + "...")


def load(path: str | Path = ".config") -> DotConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotConfiguredError(
            f"{path}: no configuration yet; run 'make defconfig' (defaults) or "
            "'make menuconfig' first") from None
    except (OSError, UnicodeDecodeError) as err:
        raise MirrorError(f"{path}: cannot read: {err}") from None
    return parse(text, str(path))
