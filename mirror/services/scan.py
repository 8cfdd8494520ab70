"""`--scan`: find the image references the workflows use.

Sources, in this order (the first source of a reference is the one kept):

- `.config`: every entry whose name ends with `_IMAGE`
  (CONFIG_DOCKER_MIRROR_REGISTRY_IMAGE, ...);
- the Kconfig files under kconfig/: the `default "..."` of every string
  symbol `config *_IMAGE`, so an image a workflow falls back to is found
  even when `.config` does not set it;
- the project's templates/ and ansible/ and every directory given: YAML keys
  `image:`, `container_image:`, `*_image:` in *.yml, *.yaml and *.j2 files,
  recursively.

This is a line scanner, not a YAML parser, on purpose: *.j2 files are not
YAML until rendered, and a line number is what the user needs to fix a bad
reference. Values that are not literals (Jinja `{{ var }}`, Compose
`${VAR}`, block scalars, aliases, flow collections, YAML booleans and
numbers) are skipped without a word; a literal that is no valid reference is
reported with its file:line and skipped, never fatal. References are
normalised (`nginx` is `docker.io/library/nginx:latest`) and deduplicated.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from ..config.dotconfig import DotConfig
from ..config.kconfig import ROOT
from ..errors import InvalidReference, ScanError
from ..model import images

SUFFIXES = (".yml", ".yaml", ".j2")
PROJECT_DIRS = ("templates", "ansible")
# Never worth descending into; a symlinked directory is not followed either
# (os.walk's default), so a link loop cannot make the scan run forever.
SKIP_DIRS = {".git", "__pycache__", "node_modules", ".venv", ".tox"}

_KEY = re.compile(r"""^\s*(?:-\s+)*(?P<q>["']?)(?P<key>[A-Za-z0-9_.-]+)(?P=q)\s*:(?:\s+(?P<value>.*?))?\s*$""")
_KCONFIG_BLOCK = re.compile(r"^\s*(config|menuconfig|choice|endchoice|menu|endmenu|comment|if|endif|"
                            r"source|rsource|osource|orsource|mainmenu)\b")
_KCONFIG_CONFIG = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$")
_KCONFIG_HELP = re.compile(r"^\s*(?:help|---help---)\s*$")
_KCONFIG_STRING = re.compile(r"^\s*string\b")
_KCONFIG_DEFAULT = re.compile(r'^\s*default\s+"((?:[^"\\]|\\.)*)"')
# A Jinja expression that is only a quoted literal, optionally through the
# mirror's own rewriting filter: '{{ "minio/minio:x" | docker_mirror_image(...) }}'
# still names minio/minio:x. Any other filter could change the string.
_JINJA_LITERAL = re.compile(
    r"""^\{\{-?\s*(?P<q>["'])(?P<literal>[^"'{}]*)(?P=q)\s*(?:\|\s*docker_mirror_image\b[^{}]*)?-?\}\}$""")
_YAML_NON_STRINGS = re.compile(
    r"^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|"
    r"[-+]?[0-9][0-9_.eE+-]*)$")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def image_key(key: str) -> bool:
    key = key.lower()
    return key == "image" or key.endswith(("_image", "-image"))


def _unquote_double(text: str) -> tuple[str, str] | None:
    """(value, rest) of a YAML double-quoted scalar at the start of `text`."""
    match = re.match(r'"((?:[^"\\]|\\.)*)"', text)
    if not match:
        return None
    value = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), match.group(1))
    return value, text[match.end():]


def _unquote_single(text: str) -> tuple[str, str] | None:
    match = re.match(r"'((?:[^']|'')*)'", text)
    if not match:
        return None
    return match.group(1).replace("''", "'"), text[match.end():]


def literal_value(raw: str | None) -> str | None:
    """The string a YAML value holds, or None when it is no literal string."""
    if not raw:
        return None  # `image:` alone: a mapping or a list follows
    if raw[0] in "\"'":
        parsed = (_unquote_double if raw[0] == '"' else _unquote_single)(raw)
        if parsed is None:
            return None  # unterminated: a multi-line scalar, not one reference
        value, rest = parsed
        rest = rest.strip()
        if rest and not rest.startswith("#"):
            return None
        quoted = True
    else:
        # A plain scalar ends at ' #' (a comment); '#' inside a word is content.
        value = re.split(r"\s#", raw, maxsplit=1)[0].strip()
        quoted = False
    if "{{" in value or "{%" in value:
        jinja = _JINJA_LITERAL.match(value)
        return jinja.group("literal") if jinja else None
    if not value or "${" in value or "$(" in value:
        return None
    if not quoted and (value[0] in "|>&*[{!%@`" or _YAML_NON_STRINGS.match(value)):
        return None
    return value


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _kconfig_refs(kconfig_dir: Path, root: Path) -> Iterable[tuple[str, str]]:
    if not kconfig_dir.is_dir():
        return
    for path in sorted(p for p in kconfig_dir.rglob("Kconfig*") if p.is_file()):
        # Per symbol block: [name, is a string, (first default, file:line)]
        block: list = [None, False, None]
        blocks = [block]
        help_indent: int | None = -1  # -1: not in help text; None: help starts, indent unknown
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, start=1):
            # Help text may hold any words ("default", "config"...): skip it, as
            # Kconfig does, up to the first line indented less than its first line.
            indent = len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())
            if help_indent != -1:
                if not line.strip():
                    continue
                if help_indent is None:
                    help_indent = indent
                    continue
                if indent >= help_indent:
                    continue
                help_indent = -1
            if _KCONFIG_HELP.match(line):
                help_indent = None
                continue
            if _KCONFIG_BLOCK.match(line):
                config = _KCONFIG_CONFIG.match(line)
                block = [config.group(1) if config else None, False, None]
                blocks.append(block)
            elif block[0] is not None:
                if _KCONFIG_STRING.match(line):
                    block[1] = True
                found = _KCONFIG_DEFAULT.match(line)
                # The first default is the unconditional one in this tree's style;
                # a default built from a $(macro) is no literal.
                if found and block[2] is None and "$(" not in found.group(1):
                    block[2] = (re.sub(r"\\(.)", r"\1", found.group(1)),
                                f"{_relative(path, root)}:{number}")
        for name, is_string, default in blocks:
            if name and name.endswith("_IMAGE") and is_string and default:
                yield default


def _files(directory: Path) -> Iterable[Path]:
    for top, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(names):
            if name.endswith(SUFFIXES):
                yield Path(top) / name


def _yaml_refs(directory: Path, shown: str) -> Iterable[tuple[str, str]]:
    """(value, 'file:line') of every literal image key under `directory`."""
    for path in _files(directory):
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as err:
            yield None, f"{path}: cannot read ({err.strerror})"
            continue
        where = os.path.join(shown, str(path.relative_to(directory)))
        for number, line in enumerate(lines, start=1):
            match = _KEY.match(line)
            if not match or not image_key(match.group("key")):
                continue
            value = literal_value(match.group("value"))
            if value is not None:
                yield value, f"{where}:{number}"


def find(config: DotConfig, dirs: list[str], *, root: Path = ROOT) -> tuple[list[tuple[str, str]], list[str]]:
    """(normalised reference, source) pairs, deduplicated, and the error lines."""
    root = Path(root)
    missing = [d for d in dirs if not Path(d).is_dir()]
    if missing:
        # A mistyped directory would otherwise look like one that holds no image.
        raise ScanError(f"--scan: no such directory: {', '.join(missing)}")
    sources: list[Iterable[tuple[str | None, str]]] = [
        config.strings_named("_IMAGE"), _kconfig_refs(root / "kconfig", root)]
    sources += [_yaml_refs(root / d, d) for d in PROJECT_DIRS if (root / d).is_dir()]
    sources += [_yaml_refs(Path(d), d) for d in dirs]
    found: dict[str, str] = {}
    errors: list[str] = []
    for source in sources:
        for value, where in source:
            if value is None:
                errors.append(where)
                continue
            try:
                found.setdefault(images.normalize(value), where)
            except InvalidReference as err:
                errors.append(f"{where}: {err}")
    return list(found.items()), errors


def scan(config: DotConfig, dirs: list[str], *, root: Path = ROOT,
         log: Callable[[str], None] = _stderr) -> list[tuple[str, str]]:
    """The references found; each invalid one is reported through `log` and skipped."""
    found, errors = find(config, dirs, root=root)
    for error in errors:
        log(f"skipped: {error}")
    return found


def format_listing(found: list[tuple[str, str]]) -> str:
    """What `--scan` alone prints: one reference per line, its source after a tab."""
    return "".join(f"{reference}\t{source}\n" for reference, source in found)


def mirrored(found: list[tuple[str, str]], settings, log: Callable[[str], None] = print) -> list[tuple[str, str]]:
    """The references whose registry has a mirror; the others are named and left out.

    A workflow may well use images of registries this host does not mirror:
    that is not a failure of the warm run.
    """
    registries = {upstream.registry for upstream in settings.upstreams}
    kept = []
    for reference, source in found:
        if images.parse(reference).registry in registries:
            kept.append((reference, source))
        else:
            log(f"scan: not warming {reference} ({source}): its registry is not mirrored")
    return kept
