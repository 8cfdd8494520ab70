"""Each option's default and range, as the Kconfig tree states them: the one place they are written.

A .config written by kconfiglib holds every option whose menu is visible,
so these matter for the rest: options under a switched-off menu (the mirror
disabled, TLS off) and a .config from before an option existed. The tree is
parsed once per process, with the host probes off (settings never wait on
the network); a default is then evaluated against the .config's own values,
as olddefconfig would. A bool under a switched-off menu is n, as in
Kconfig; a number or string there keeps its own default (its conditions
read without the option's own dependencies, which kconfiglib folds into
every default), so that a disabled mirror still has a port and a path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

from . import dotconfig, kconfig_tree

_LOCK = threading.Lock()


@dataclass(frozen=True)
class Defaults:
    values: dict[str, bool | int | str]        # symbol -> default
    ranges: dict[str, tuple[int, int]]         # int symbol -> (low, high) in force

    def default(self, symbol: str):
        try:
            return self.values[symbol]
        except KeyError:
            raise KeyError(f"{symbol} is not an option of the Kconfig tree") from None

    def range(self, symbol: str) -> tuple[int, int]:
        try:
            return self.ranges[symbol]
        except KeyError:
            raise KeyError(f"{symbol} is not an int option with a range in the Kconfig tree") from None


@lru_cache(maxsize=1)
def _tree():
    return kconfig_tree.parse()


def of(config: dotconfig.DotConfig) -> Defaults:
    """The defaults and ranges in force for `config`'s values."""
    import kconfiglib

    tree = _tree()
    with _LOCK:
        tree.unset_values()
        for entry in config.entries.values():
            sym = tree.syms.get(entry.name)
            if sym is not None and sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
                sym.set_value(2 if entry.value is True else 0)
            elif sym is not None and isinstance(entry.value, (int, str)) and not isinstance(entry.value, bool):
                sym.set_value(str(entry.value))
        values, ranges = {}, {}
        for name, sym in tree.syms.items():
            if sym.orig_type == kconfiglib.UNKNOWN or not sym.nodes:
                continue
            values[name] = _default(sym, kconfiglib)
            found = _range(sym, kconfiglib)
            if found:
                ranges[name] = found
    return Defaults(values, ranges)


def _holds(cond, sym, kconfiglib) -> bool:
    """`cond` is true, leaving out what the option's own dependencies add to it."""
    return all(kconfiglib.expr_value(part) for part in kconfig_tree.own_conditions(cond, sym.direct_dep))


def _typed(sym, text: str):
    import kconfiglib

    if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
        return text in ("y", "m")
    if sym.orig_type == kconfiglib.INT:
        return int(text) if text else 0
    if sym.orig_type == kconfiglib.HEX:
        return int(text, 16) if text else 0
    return text


def _default(sym, kconfiglib):
    # A bool is what Kconfig makes of it: n when what it depends on is off.
    if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
        return sym.tri_value > 0
    if sym.str_value != "":
        return _typed(sym, sym.str_value)
    # A value under a switched-off menu: its own default, as if the menu were on.
    for value, cond in sym.defaults:
        if _holds(cond, sym, kconfiglib):
            return _typed(sym, value.str_value)
    return _typed(sym, "")


def _range(sym, kconfiglib) -> tuple[int, int] | None:
    if sym.orig_type not in (kconfiglib.INT, kconfiglib.HEX):
        return None
    for low, high, cond in sym.ranges:
        if _holds(cond, sym, kconfiglib):
            return _typed(sym, low.str_value), _typed(sym, high.str_value)
    return None
