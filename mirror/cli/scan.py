"""List the image references workflows use, and where each is named.

    python3 -m mirror scan [DIR...]

Reads the project's Kconfig, .config and templates, and the YAML files
under each DIR, for image references; prints each with its sources. Nothing
is pulled (`pull --scan` warms them).
"""

import argparse

from ..config import dotconfig
from ..services import scan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="*", metavar="DIR", help="more directories of YAML files to scan")


def run(args) -> int:
    print(scan.format_listing(scan.scan(dotconfig.load(args.config), args.dirs)), end="")
    return 0
