"""Running kconfiglib's own tools (menuconfig, olddefconfig, ...) on our tree.

Each kconfiglib tool is a short main() over the library that reads sys.argv;
we call it in-process with kconfig/ on sys.path so that our probe functions
(kconfig/kconfigfunctions.py) are found.
"""

import importlib
import os
import sys
from pathlib import Path

from ..errors import KconfigToolError

ROOT = Path(__file__).resolve().parent.parent.parent  # the project tree
KCONFIG = ROOT / "Kconfig"
DEFCONFIGS = ROOT / "defconfigs"
TOOLS = ("menuconfig", "oldconfig", "olddefconfig", "defconfig", "savedefconfig")
# kconfiglib's save moves .config to .config.old and then writes it anew: a long-running reader
# (the keeper, the status page) that finds .config gone or switched off asks again this many
# seconds later before it believes it.
CONFIRM_AFTER = 1.0


def defconfig_path(name: str) -> Path:
    path = DEFCONFIGS / name
    if "/" in name or name.startswith(".") or not path.is_file():
        known = ", ".join(sorted(p.name for p in DEFCONFIGS.iterdir() if p.is_file()))
        raise KconfigToolError(f"no defconfig named {name!r} in {DEFCONFIGS}; known: {known}")
    return path


def run_tool(tool: str, args: list[str], config: str = ".config") -> int:
    if tool not in TOOLS:
        raise KconfigToolError(f"unknown Kconfig tool {tool!r}; known: {', '.join(TOOLS)}")
    sys.path.insert(0, str(ROOT / "kconfig"))
    os.environ["KCONFIG_CONFIG"] = config
    os.environ.setdefault("srctree", str(ROOT))
    import kconfiglib

    module = importlib.import_module(tool)
    sys.argv = [tool, *args]
    try:
        # menuconfig and oldconfig name their entry point _main() in kconfiglib 14.1.0
        result = (getattr(module, "main", None) or module._main)()
    except kconfiglib.KconfigError as err:
        raise KconfigToolError(str(err)) from None
    except EnvironmentError as err:  # kconfiglib's own I/O errors: a missing file named by the user
        raise KconfigToolError(f"{getattr(err, 'filename', '') or tool}: {err.strerror or err}") from None
    return result if isinstance(result, int) else 0
