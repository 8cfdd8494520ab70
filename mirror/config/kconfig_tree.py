"""The Kconfig tree as kconfiglib parses it, and reading the conditions of its defaults and ranges.

Both the settings' defaults (config.defaults) and the options reference
(config.options_reference) read the tree; they parse it the same way, with
the host probes off: the probes (kconfig/kconfigfunctions.py) describe this
host, which neither a .config's defaults nor the docs may depend on.
"""

from __future__ import annotations

import os
import sys

from . import kconfig

PROBES_OFF = {"DOCKER_MIRROR_PROBES": "off"}  # read by kconfig/kconfigfunctions.py


def parse():
    """A fresh parse of the tree, the probes module on sys.path (the tree imports it)."""
    kconfig_dir = str(kconfig.ROOT / "kconfig")
    if kconfig_dir not in sys.path:
        sys.path.insert(0, kconfig_dir)
    import kconfiglib

    saved = {name: os.environ.get(name) for name in [*PROBES_OFF, "srctree"]}
    os.environ.update(PROBES_OFF)
    os.environ.setdefault("srctree", str(kconfig.ROOT))
    try:
        return kconfiglib.Kconfig(str(kconfig.KCONFIG), warn=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def own_conditions(cond, inherited) -> list:
    """The parts of `cond` (an expression of `a && b && ...`) that `inherited` does not already
    say: kconfiglib folds an option's own dependencies (an enclosing `if` or menu) into every
    default and range of it."""
    import kconfiglib

    known = {kconfiglib.expr_str(part) for part in _conjuncts(inherited)}
    return [part for part in _conjuncts(cond)
            if kconfiglib.expr_str(part) not in known and kconfiglib.expr_str(part) != "y"]


def _conjuncts(expr) -> list:
    import kconfiglib

    if isinstance(expr, tuple) and expr[0] == kconfiglib.AND:
        return _conjuncts(expr[1]) + _conjuncts(expr[2])
    return [expr]
