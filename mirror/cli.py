"""The command line: parse arguments, call the library, map errors to exit codes.

Every command is a thin call into one module; the only logic here is turning
a MirrorError into its message and exit code, in one place.
"""

import argparse
import os
import sys

from . import dotconfig, extra_vars, kconfig, settings
from .errors import MirrorError, NotImplementedYet

DEFAULT_CONFIG = os.environ.get("KCONFIG_CONFIG", ".config")


def cmd_config(args) -> int:
    tool_args = list(args.args)
    if args.tool == "defconfig":
        if len(tool_args) != 1:
            raise kconfig.KconfigToolError("usage: config defconfig NAME (a file in defconfigs/)")
        tool_args = ["--kconfig", str(kconfig.KCONFIG), str(kconfig.defconfig_path(tool_args[0]))]
    elif args.tool == "savedefconfig":
        tool_args = ["--kconfig", str(kconfig.KCONFIG), *tool_args]
    else:
        tool_args = [str(kconfig.KCONFIG), *tool_args]
    return kconfig.run_tool(args.tool, tool_args, config=args.config)


def cmd_extra_vars(args) -> int:
    config = dotconfig.load(args.config)
    settings.from_dotconfig(config)  # refuse to publish values that do not validate
    path = extra_vars.write(config, args.out)
    print(f"wrote {path}")
    return 0


def cmd_check(args) -> int:
    loaded = settings.load(args.config)
    upstreams = ", ".join(f"{u.registry} on {loaded.bind_address}:{u.port}" for u in loaded.upstreams)
    print(f"{args.config}: OK ({'enabled' if loaded.enabled else 'disabled'}; {upstreams})")
    return 0


def not_implemented_yet(what: str):
    def command(args) -> int:
        settings.load(args.config)
        raise NotImplementedYet(f"{what}: not implemented yet (the configuration is valid)")
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m mirror", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="the .config to read (default: $KCONFIG_CONFIG or .config)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = commands.add_parser("config", help="run a Kconfig tool on this tree")
    config.add_argument("tool", choices=kconfig.TOOLS)
    config.add_argument("args", nargs=argparse.REMAINDER)
    config.set_defaults(func=cmd_config)

    extra = commands.add_parser("extra-vars", help="write extra_vars.yaml from .config")
    extra.add_argument("--out", default="extra_vars.yaml")
    extra.set_defaults(func=cmd_extra_vars)

    commands.add_parser("check", help="validate .config").set_defaults(func=cmd_check)

    for name, what in (("mirror", "set up every enabled mirror"),
                       ("docker-mirror", "set up the Docker registry mirror"),
                       ("pull", "warm the mirror with the images to keep"),
                       ("status", "show what the mirror holds")):
        commands.add_parser(name, help=what).set_defaults(func=not_implemented_yet(name))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MirrorError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
