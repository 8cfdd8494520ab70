"""Show what the mirror holds and whether it answers.

    python3 -m mirror status [--json] [--path DIR] [--port N] [--name PREFIX]

Each mirror's mode, container and health, the cached images, disk use, the
last refresh, the keeper, units and metrics service, Docker Hub's rate
limit headroom. Works without a Docker engine (then from the storage tree
and ports alone). Exit status 0 when every enabled upstream's mirror
answers (or the mirror is disabled), 1 otherwise. `make docker-mirror-status` runs this.
"""

import argparse
import json

from ..engine.client import connect
from ..errors import DockerError
from ..services import status
from .common import add_overrides, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON document")
    add_overrides(parser)


def run(args) -> int:
    loaded = load_settings(args)
    try:
        client = connect()
    except DockerError:
        client = None  # still report what the storage tree and ports say
    doc = status.gather(loaded, client)
    print(json.dumps(doc, indent=2) if args.json else status.format_text(doc), end="\n")
    return status.exit_code(doc)
