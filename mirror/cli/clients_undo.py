"""Take back exactly what `clients` added to this host's Docker and containerd.

    python3 -m mirror clients-undo [--no-reload]

The paths and entries come from the record `clients` wrote; an entry the
user had before is left. `make docker-mirror-clients-undo` runs this.
"""

import argparse

from ..config import settings
from ..services import clients


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-reload", action="store_true", help="do not reload dockerd")


def run(args) -> int:
    report = clients.undo(settings.load(args.config), reload=not args.no_reload)
    print("\n".join(report.lines))
    return 0
