"""The options reference (docs/options.md), generated from the Kconfig tree.

The tree is the one place an option's prompt, default, range, dependencies
and help are written; this module lays them out for reading, so the
reference cannot drift from what menuconfig offers. Defaults are shown as
Kconfig writes them (expressions and conditions, not evaluated): the
reference is the same on every host, whatever the probes find.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from ..host.files import atomic_write
from . import kconfig, kconfig_tree

TEMPLATE = "options.md.j2"
OUT = kconfig.ROOT / "docs" / "options.md"


@dataclass(frozen=True)
class Option:
    name: str
    prompt: str
    type: str
    defaults: tuple[str, ...]
    range: str
    depends: str
    help: str
    choice: str  # the prompt of the choice it belongs to, or ""


@dataclass(frozen=True)
class Section:
    title: str
    depth: int
    options: tuple[Option, ...]


def _expr(expr) -> str:
    import kconfiglib

    return kconfiglib.expr_str(expr)


def _condition(cond, inherited) -> str:
    """`cond` without what the option's own dependencies already say."""
    rest = [_expr(part) for part in kconfig_tree.own_conditions(cond, inherited)]
    return f" if {' && '.join(rest)}" if rest else ""


def _option(node, choice: str) -> Option:
    import kconfiglib

    sym = node.item
    defaults = tuple(_expr(value) + _condition(cond, node.dep) for value, cond in sym.defaults)
    ranges = "; ".join(f"{_expr(low)} to {_expr(high)}{_condition(cond, node.dep)}"
                       for low, high, cond in sym.ranges)
    depends = "" if node.dep is sym.kconfig.y else _expr(node.dep)
    return Option(name=kconfig_prefix(sym.name), prompt=node.prompt[0],
                  type=kconfiglib.TYPE_TO_STR[sym.orig_type], defaults=defaults, range=ranges,
                  depends=depends, help=(node.help or "").strip(), choice=choice)


def kconfig_prefix(name: str) -> str:
    return f"CONFIG_{name}"


def sections(tree) -> list[Section]:
    """Every menu with the options it prompts for, in menuconfig's order."""
    import kconfiglib

    found: list[Section] = []

    def options_under(parent, choice: str, menus: list) -> list[Option]:
        # Symbols nest under the symbol they depend on (an implicit submenu):
        # those stay in their menu; a real menu becomes a section of its own.
        options = []
        child = parent.list
        while child:
            if child.item is kconfiglib.MENU:
                menus.append(child)
            else:
                if isinstance(child.item, kconfiglib.Symbol) and child.prompt:
                    options.append(_option(child, choice))
                if child.list:
                    inner = child.prompt[0] if isinstance(child.item, kconfiglib.Choice) else choice
                    options += options_under(child, inner, menus)
            child = child.next
        return options

    def walk(menu, title: str, depth: int) -> None:
        menus: list = []
        found.append(Section(title, depth, tuple(options_under(menu, "", menus))))
        for sub in menus:
            walk(sub, sub.prompt[0], depth + 1)

    walk(tree.top_node, tree.mainmenu_text, 0)
    return found


def render(tree) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(kconfig.ROOT / "templates")),
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                             autoescape=False)
    return env.get_template(TEMPLATE).render(sections=sections(tree))


def write(out: Path = OUT) -> Path:
    atomic_write(out, render(kconfig_tree.parse()))
    return out
