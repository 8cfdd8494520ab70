"""One refresh run: what the refresh timer (PREFIX-refresh.timer) starts.

    python3 -m mirror refresh [--log FILE] [--no-wait] [-v] [--path DIR] [--port N] [--name PREFIX]

Takes the mirror's refresh lock (one run at a time), writes a log under
logs/ (old ones pruned after DOCKER_MIRROR_LOG_RETENTION_DAYS), re-checks
each upstream's mode, then pulls the images to keep warm through the mirror
and applies the cache's lifecycle. Exit status 1 when an image failed.
"""

import argparse
import os
import sys
from pathlib import Path

from ..services import warm
from ..engine.client import connect
from ..services import refresh
from .common import add_overrides, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log", help="log file (default: logs/update-<time>.log)")
    parser.add_argument("--no-wait", action="store_true", help="exit at once when another refresh is running")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print the log lines")
    add_overrides(parser)


def run(args) -> int:
    loaded = load_settings(args)
    log_path = Path(os.path.abspath(args.log)) if args.log else None
    echo = print if sys.stdout.isatty() or args.verbose else None
    return refresh.run(loaded, connect(), log_path=log_path, wait=not args.no_wait,
                       echo=echo, warm=warm.warm)
