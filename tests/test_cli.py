"""The command line's shape: one table of verbs, each its own module, older names kept."""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mirror import cli
from mirror.cli import observe
from mirror.config.kconfig import ROOT
from test_docs import is_target   # the docs' own check of targets (`make help`)

CLI = ROOT / "mirror" / "cli"
SERVICES = ROOT / "mirror" / "services"


def imports_of(path: Path, typing: bool = False) -> set[str]:
    """The modules `path` imports (relative ones resolved against mirror/), anywhere in the file,
    function bodies included, but under `if TYPE_CHECKING:` (annotations only, never run) unless
    `typing`."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()

    def visit(node):
        if not typing and isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            return
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def verb_module(verb):
    return importlib.import_module(f"mirror.cli.{verb.module}")


def module_graph(typing: bool = False) -> dict[str, set[str]]:
    modules = {}
    for path in (ROOT / "mirror").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    return {name: {m for m in imports_of(path, typing) if m in modules and m != name}
            for name, path in modules.items()}


def cycles_in(graph: dict[str, set[str]]) -> list[str]:
    done, cycles = set(), []

    def walk(name, path):
        for imported in sorted(graph[name]):
            if imported in path:
                cycles.append(" -> ".join(path[path.index(imported):] + [imported]))
            elif imported not in done:
                walk(imported, path + [imported])
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            walk(name, [name])
    return cycles


def test_every_verb_module_is_in_the_table_once():
    modules = {p.stem for p in CLI.glob("*.py")} - {"__init__", "common"}
    assert sorted(v.module for v in cli.COMMANDS) == sorted(modules)
    names = [n for v in cli.COMMANDS for n in (v.name, *v.aliases)]
    assert len(names) == len(set(names))


def test_no_verb_imports_another_and_no_service_imports_a_verb():
    verbs = {f"mirror.cli.{v.module}" for v in cli.COMMANDS}
    for path in CLI.glob("*.py"):
        assert not imports_of(path) & (verbs - {f"mirror.cli.{path.stem}"}), path
    for path in [*SERVICES.glob("*.py"), *(ROOT / "mirror" / "commands").glob("*.py")]:
        assert not {m for m in imports_of(path) if m == "mirror.cli" or m.startswith("mirror.cli.")}, path


def test_model_imports_nothing_above_it():
    for path in (ROOT / "mirror" / "model").glob("*.py"):
        above = {m for m in imports_of(path) if m.startswith("mirror.")
                 and not m.startswith(("mirror.model", "mirror.errors"))}
        assert not above, f"{path.name} imports {sorted(above)}"


def test_no_module_imports_itself_round_a_cycle():
    # Imports in function bodies and under `if TYPE_CHECKING:` count: a circle they close is one
    # all the same (a shared piece belongs in a module both import, e.g. engine/registry_image_ref.py).
    cycles = cycles_in(module_graph(typing=True))
    assert not cycles, cycles


def test_no_benchmark_imports_itself_round_a_cycle():
    # bench/ scripts import each other by their bare names (run as scripts, bench/ is on sys.path)
    scripts = {path.stem: path for path in (ROOT / "bench").glob("*.py")}
    graph = {name: {m for m in imports_of(path, typing=True) if m in scripts and m != name}
             for name, path in scripts.items()}
    cycles = cycles_in(graph)
    assert not cycles, cycles


@pytest.mark.parametrize("old, new", [("watch", "keeper"), ("serve-status", "observe"), ("mirror", "docker-mirror")])
def test_older_names_run_the_same_verb(old, new):
    # installed units and scripts run the older names: they must parse to the same verb
    assert cli.build_parser([old]).parse_args([old]).run is cli.build_parser([new]).parse_args([new]).run


def test_help_of_a_verb_is_its_docstring():
    ran = subprocess.run([sys.executable, "-m", "mirror", "serve-status", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    first = observe.__doc__.strip().splitlines()[0]
    assert first in ran.stdout and "--textfile" in ran.stdout


def test_every_make_target_a_verb_page_names_is_one():
    named = {(v.name, target) for v in cli.COMMANDS
             for target in re.findall(r"`make ([a-z][\w.-]*)", getattr(verb_module(v), "__doc__"))}
    assert named and not [(verb, target) for verb, target in named
                          if not is_target(target) and target != "extra_vars.yaml"]


def test_an_unknown_verb_is_refused_naming_it():
    ran = subprocess.run([sys.executable, "-m", "mirror", "frobnicate"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 2 and "frobnicate" in ran.stderr and "Traceback" not in ran.stderr
