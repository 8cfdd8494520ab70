"""Load image archives back into the mirror, checking each against its .sha256.

    python3 -m mirror restore [ARCHIVE...] [--path DIR] [--port N] [--name PREFIX]

ARCHIVE: archive files or names (default: every archive in images/archives/,
as `pull --archive` wrote them). Pull-through mirrors take them too. Never
beside a refresh or a collection (the refresh lock). Exit status 1 when an
archive failed. `make docker-mirror-restore` runs this.
"""

import argparse

from ..engine.client import connect
from ..services import refresh
from .common import add_overrides, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("archives", nargs="*", metavar="ARCHIVE",
                        help="archive files or names (default: every archive in images/archives)")
    add_overrides(parser)


def run(args) -> int:
    failures = refresh.restore_now(load_settings(args), connect(), paths=args.archives or None)
    return 1 if failures else 0
