"""Apply the cache's lifecycle policy now, and free its disk.

    python3 -m mirror gc [--dry-run] [--path DIR] [--port N] [--name PREFIX]

Drops what DOCKER_MIRROR_KEEP_UNUSED_DAYS, DOCKER_MIRROR_CACHE_MAX_SIZE_GB
and DOCKER_MIRROR_KEEP_PREVIOUS_DIGESTS say should go, then runs
distribution's garbage-collect (the mirror stops meanwhile). Never beside a
refresh (the refresh lock). `make docker-mirror-gc [DRY_RUN=1]` runs this.
"""

import argparse

from ..engine.client import connect
from ..services import refresh
from .common import add_overrides, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would go and the bytes it would free; change nothing")
    add_overrides(parser)


def run(args) -> int:
    refresh.collect_now(load_settings(args), connect(), dry_run=args.dry_run)
    return 0
