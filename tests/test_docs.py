"""The docs a newcomer follows: every link lands, every command they show exists.

README.md stays a short page that opens with the Quick start CI runs, and
reaches every guide, the options reference and the figures in one link.
No engine: each documented `python3 -m mirror VERB` and bench script is asked
for its `--help` only.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 160
QUICK_START = ["scripts/quickstart.sh", "make test"]


def doc_files() -> list[Path]:
    return [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md")),
            ROOT / "bench" / "README.md", ROOT / "patches" / "distribution" / "README.md"]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- reading Markdown: enough of CommonMark for these files

FENCE = re.compile(r"^ {0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Doc:
    path: Path
    prose: str                 # the text outside fenced blocks, code spans blanked
    code: tuple[str, ...]      # every code span's and fenced block line's text
    headings: tuple[tuple[int, str], ...]   # (level, text) outside fenced blocks
    first_fence: tuple[str, tuple[str, ...]] | None   # info string and lines of the first block


@cache
def read(path: Path) -> Doc:
    prose, code, headings, fences = [], [], [], []
    fence = None
    for line in path.read_text(encoding="utf-8").splitlines():
        opened = FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1) == fence[0] and not line.strip().strip(fence[0][0]):
                fences.append((fence[1], tuple(fence[2])))
                fence = None
            else:
                fence[2].append(line)
                code.append(line)
            continue
        if opened:
            fence = (opened.group(1), line.strip()[3:].strip(), [])
            continue
        if found := HEADING.match(line):
            headings.append((len(found.group(1)), found.group(2)))
        prose.append(line)
    text = "\n".join(prose)
    code.extend(span.group(2).strip() for span in CODE_SPAN.finditer(text))
    blanked = CODE_SPAN.sub(lambda span: "`" + " " * (len(span.group(0)) - 2) + "`", text)
    return Doc(path, blanked, tuple(code), tuple(headings), fences[0] if fences else None)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text as rendered, lower case, punctuation
    dropped (but '-' and '_'), each space a '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link: its text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, text in read(path).headings:
        base = slug(text)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(doc: Doc) -> list[str]:
    return [m.group(1) for m in LINK.finditer(doc.prose)] + REFERENCE.findall(doc.prose)


def relative_links() -> list[tuple[Path, str]]:
    return [(path, target) for path in doc_files() for target in links(read(path))
            if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


# -- links


@pytest.mark.parametrize("path", doc_files(), ids=rel)
def test_every_doc_exists_and_has_a_title(path):
    assert path.is_file(), f"{rel(path)} is gone: the docs map and this test name it"
    assert read(path).headings and read(path).headings[0][0] == 1, f"{rel(path)} opens without a '# ' title"


def test_every_relative_link_lands_on_a_file_and_heading():
    broken = []
    for path, target in relative_links():
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{rel(path)}: ({target})"
        if not dest.is_relative_to(ROOT):
            broken.append(f"{where} leaves the repository")
        elif not dest.exists():
            broken.append(f"{where}: no such file {rel(dest)}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{where}: {rel(dest)} has no heading whose anchor is #{anchor}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_checker_sees_links_anchors_and_code(tmp_path):
    # The checks above must not pass by finding nothing.
    assert ("docs/engine.md", "#the-patches-and-why") in {
        (rel(p), t[t.index("#"):]) for p, t in relative_links() if "#" in t}
    assert slug("`--scan`: the images workflows use") == "--scan-the-images-workflows-use"
    assert slug("The registry engine's build") == "the-registry-engines-build"
    assert slug("`extra_vars.yaml` and secrets") == "extra_varsyaml-and-secrets"
    # A link inside code is an example, not a link; a command inside code is one to check.
    page = tmp_path / "page.md"
    page.write_text("# T\n\n`[a](span.md)` [c](here.md#x)\n\n```sh\n[b](block.md)\nmake test\n```\n\n## X\n")
    doc = read(page)
    assert links(doc) == ["here.md#x"]
    assert "make test" in doc.code and "[a](span.md)" in doc.code
    assert doc.first_fence == ("sh", ("[b](block.md)", "make test"))
    assert anchors(page) == {"t", "x"}


# -- commands


@cache
def make_targets() -> tuple[str, ...]:
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return tuple(line.split()[0] for line in listed.splitlines() if line.strip())


def is_target(name: str) -> bool:
    return any(re.fullmatch(re.escape(t).replace("%", ".+"), name) for t in make_targets())


def code_lines() -> list[tuple[Path, str]]:
    return [(path, line) for path in doc_files() for line in read(path).code]


def make_commands() -> list[tuple[Path, str]]:
    """(doc, target) of every `make [VAR=value...] TARGET` shown in code."""
    found = []
    for path, line in code_lines():
        for m in re.finditer(r"(?:^|[\s;&|(])make\s+((?:-\S+\s+)*(?:[A-Z_][A-Z0-9_]*=\S*\s+)*)([a-z][\w.%-]*)", line):
            found.append((path, m.group(2)))
    return found


def test_every_make_target_the_docs_show_is_one_make_help_lists():
    shown = make_commands()
    assert len({t for _, t in shown}) > 10, "the docs show make commands: the pattern must find them"
    unknown = sorted({f"{rel(p)}: make {t}" for p, t in shown if not is_target(t)})
    assert not unknown, "not a target of `make help`:\n" + "\n".join(unknown)


def test_the_readme_targets_table_is_make_help():
    table = README.read_text().split("## Make targets", 1)[1].split("\n## ", 1)[0]
    cells = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    listed = {re.sub(r"-[A-Z]+$", "-%", name) for cell in cells for name in re.findall(r"`([^`]+)`", cell)}
    assert listed == set(make_targets()) - {"help"}


def mirror_commands() -> dict[str, set[str]]:
    """verb -> the --options shown with it, for every `python3 -m mirror VERB ...` in code."""
    verbs: dict[str, set[str]] = {}
    for _, line in code_lines():
        for m in re.finditer(r"python3? -m mirror\s+(?:--config\s+\S+\s+)?([a-z][\w-]*)([^`|;]*)", line):
            verbs.setdefault(m.group(1), set()).update(re.findall(r"--[a-z][\w-]*", m.group(2)))
    return verbs


def bench_commands() -> dict[str, set[str]]:
    scripts: dict[str, set[str]] = {}
    for _, line in code_lines():
        for m in re.finditer(r"python3? (bench/[\w-]+\.py)([^`|;]*)", line):
            scripts.setdefault(m.group(1), set()).update(re.findall(r"--[a-z][\w-]*", m.group(2)))
    return scripts


def answers_help(argv: list[str], options: set[str], what: str) -> None:
    ran = subprocess.run([sys.executable, *argv, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, f"`{what} --help` exited {ran.returncode}: {ran.stderr[-500:]}"
    missing = sorted(o for o in options if not re.search(re.escape(o) + r"\b", ran.stdout))
    assert not missing, f"the docs show `{what}` with {', '.join(missing)}, which its --help does not list"


@pytest.mark.parametrize("verb", sorted(mirror_commands()))
def test_every_mirror_verb_the_docs_show_answers_help(verb):
    answers_help(["-m", "mirror", verb], mirror_commands()[verb], f"python3 -m mirror {verb}")


@pytest.mark.parametrize("script", sorted(bench_commands()))
def test_every_bench_script_the_docs_show_answers_help(script):
    answers_help([script], bench_commands()[script], f"python3 {script}")


def test_the_pattern_finds_the_documented_verbs():
    assert {"keeper", "observe", "engine", "k8s", "restore"} <= set(mirror_commands())
    assert "bench/fetch_once.py" in bench_commands()


TOP_DIRS = ("mirror", "tests", "bench", "scripts", "templates", "patches", "ansible", "grafana",
            "docs", "kconfig", "defconfigs", ".ci")


def ignored(path: str) -> bool:
    """What git ignores is made by a run (tests/artifacts/, k8s/), not kept in the tree."""
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0


def test_every_repository_path_the_docs_name_exists():
    missing = set()
    for path, line in code_lines():
        for token in re.findall(r"(?<![\w./-])((?:%s)/[\w./*<>-]*)" % "|".join(map(re.escape, TOP_DIRS)), line):
            token = token.rstrip(".,:")
            # placeholders (NAME, NNNN-*, <key>) are patterns, not files; mirror/docker is /mirror/docker
            if re.search(r"[*<>]|\.\.\.|(?:^|/)[A-Z]{3,}", token) or token.startswith("mirror/docker"):
                continue
            if not (ROOT / token).exists() and not ignored(token):
                missing.add(f"{rel(path)}: {token}")
    assert not missing, "paths the docs name that are not in the tree:\n" + "\n".join(sorted(missing))


# -- the README


def test_the_readme_is_short():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move detail into a guide under docs/"


def test_the_readme_opens_with_the_quick_start_ci_runs():
    doc = read(README)
    assert [text for level, text in doc.headings if level == 2][0] == "Quick start"
    info, block = doc.first_fence
    commands = [line.split("#", 1)[0].strip() for line in block if line.split("#", 1)[0].strip()]
    assert (info, commands) == ("sh", QUICK_START)
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith(("#", "set ", "cd ", "export "))]
    assert ci == QUICK_START, ".ci/run must run exactly the README's Quick start"


def test_every_guide_and_the_figures_are_one_link_from_the_readme():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(read(README)) if "://" not in t}
    wanted = {*(ROOT / "docs").glob("*.md"), ROOT / "CONTRIBUTING.md", ROOT / "bench" / "README.md"}
    assert not wanted - linked, "not linked from README.md: " + ", ".join(sorted(map(rel, wanted - linked)))


@pytest.mark.parametrize("path", [p for p in doc_files()[1:] if len(p.read_text().splitlines()) > 100], ids=rel)
def test_a_long_doc_opens_with_a_table_of_contents(path):
    # README.md itself is short: its Documentation map is its contents.
    doc = read(path)
    sections = [slug(text) for level, text in doc.headings if level == 2]
    before = doc.prose.split("\n## ", 1)[0]
    listed = {t[1:] for t in (m.group(1) for m in LINK.finditer(before)) if t.startswith("#")}
    assert not set(sections) - listed, f"{rel(path)}: its contents at the top miss " + \
        ", ".join(sorted(set(sections) - listed))
