"""Take down what `make docker-mirror` set up; the cache stays unless --purge.

    python3 -m mirror remove [--purge] [--path DIR] [--port N] [--name PREFIX]

Stops and removes the keeper, the systemd units this mirror installed (only
files it wrote), its containers and its NFS export. --purge also deletes the
mirror directory and its cache, asking first on a terminal (PURGE=1 answers
where nobody can be asked). Without a Docker engine the containers are left
as they are, with a warning. `make docker-mirror-remove [PURGE=1]` runs this.
"""

import argparse
import sys

from ..engine.client import connect
from ..errors import DockerError
from ..services import remove
from .common import add_overrides, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--purge", action="store_true",
                        help="also delete the mirror directory and its cache (asks first on a terminal)")
    add_overrides(parser)


def confirm(question: str) -> bool:
    # PURGE=1 is the answer where nobody can be asked (CI, a pipe).
    if not sys.stdin.isatty():
        return True
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def run(args) -> int:
    loaded = load_settings(args)
    try:
        client = connect()
    except DockerError as err:
        client = None
        print(f"warning: {err}; containers are left as they are", file=sys.stderr)
    found = remove.remove(loaded, client, purge_cache=args.purge, confirm=confirm)
    if not found and not args.purge:
        print(f"nothing of the mirror in {loaded.path} is set up on this host")
    return 0
