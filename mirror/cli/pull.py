"""Warm the mirror with the images to keep, now: a forced, blocking refresh that prints as it goes.

    python3 -m mirror pull [LIST] [--scan] [--scan-dir DIR]... [--archive [--prune]] [--no-wait]
                      [--path DIR] [--port N] [--name PREFIX]

The images Kconfig lists (DOCKER_MIRROR_IMAGE_*, DOCKER_MIRROR_IMAGES_EXTRA_LIST),
and those of LIST (one reference per line), are pulled through their mirrors.
--scan adds the images the project's Kconfig, .config and templates name,
--scan-dir those of the YAML files under DIR. --archive then saves each image
to images/archives/ for offline hosts (--prune drops archives no longer
listed). `make docker-mirror-pull` (mirror-docker-images.sh) runs this.
Exit status 1 when an image failed.
"""

import argparse

from ..engine.client import connect
from ..services import pull
from .common import add_overrides, load_dotconfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("list", nargs="?", help="a file of more images, one reference per line")
    parser.add_argument("--scan", action="store_true",
                        help="also warm the images the project's Kconfig, .config and templates use")
    parser.add_argument("--scan-dir", action="append", default=[], metavar="DIR",
                        help="also warm the images YAML files under DIR use (repeatable; implies --scan)")
    parser.add_argument("--archive", action="store_true",
                        help="then save each image to images/archives/ for offline hosts")
    parser.add_argument("--prune", action="store_true",
                        help="with --archive: remove archives of images no longer listed")
    parser.add_argument("--no-wait", action="store_true", help="exit at once when another refresh is running")
    add_overrides(parser)


def run(args) -> int:
    return pull.pull(load_dotconfig(args), connect(), list_file=args.list,
                     scan=args.scan or bool(args.scan_dir), scan_dirs=args.scan_dir,
                     archive=args.archive, prune=args.prune, wait=not args.no_wait)
