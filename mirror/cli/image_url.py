"""Print each image reference as pulled through the mirror.

    python3 -m mirror image-url [--no-probe] [--path DIR] [--port N] [--name PREFIX] REF...

A reference of a mirrored registry becomes HOST:PORT/NAME:TAG of its
mirror; one of another registry, or any when the mirror is disabled or does
not answer (unless --no-probe), is printed unchanged. See docs/clients.md.
"""

import argparse

from ..services import rewrite
from .common import add_overrides, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("refs", nargs="+", metavar="REF", help="an image reference, e.g. minio/minio:latest")
    parser.add_argument("--no-probe", action="store_true", help="rewrite without asking whether the mirror answers")
    add_overrides(parser)


def run(args) -> int:
    for reference in rewrite.mirror_images(args.refs, load_settings(args), probe=not args.no_probe):
        print(reference)
    return 0
