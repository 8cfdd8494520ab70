"""Run a Kconfig tool (kconfiglib's menuconfig, oldconfig, ...) on this tree's Kconfig.

    python3 -m mirror config TOOL [ARGS...]

TOOL is one of kconfiglib's tools; the .config it reads and writes is
--config (default: $KCONFIG_CONFIG or .config). `defconfig NAME` loads
defconfigs/NAME; `savedefconfig` writes the minimal defconfig of .config.
The make targets menuconfig, oldconfig, olddefconfig, defconfig-NAME and
savedefconfig run this.
"""

import argparse
import os

from ..config import kconfig, secrets
from ..errors import KconfigToolError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tool", choices=kconfig.TOOLS)
    parser.add_argument("args", nargs=argparse.REMAINDER)


def run(args) -> int:
    tool_args = list(args.args)
    if args.tool == "defconfig":
        if len(tool_args) != 1:
            raise KconfigToolError("usage: config defconfig NAME (a file in defconfigs/)")
        tool_args = ["--kconfig", str(kconfig.KCONFIG), str(kconfig.defconfig_path(tool_args[0]))]
    elif args.tool == "savedefconfig":
        tool_args = ["--kconfig", str(kconfig.KCONFIG), *tool_args]
    else:
        tool_args = [str(kconfig.KCONFIG), *tool_args]
    try:
        return kconfig.run_tool(args.tool, tool_args, config=args.config)
    finally:
        # kconfiglib rewrites .config with the umask's mode (0644): a password in it
        # would be world-readable after every menuconfig or olddefconfig.
        if os.path.isfile(args.config):
            secrets.protect(args.config)   # and .config.old, kconfiglib's backup of it
        if args.tool == "savedefconfig":   # the minimal config keeps every password that is set
            secrets.protect_file(_out(tool_args))


def _out(tool_args: list[str]) -> str:
    """Where savedefconfig writes (its --out, default ./defconfig as kconfiglib has it)."""
    for i, word in enumerate(tool_args):
        if word == "--out" and i + 1 < len(tool_args):
            return tool_args[i + 1]
        if word.startswith("--out="):
            return word.split("=", 1)[1]
    return "defconfig"
