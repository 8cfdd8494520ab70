"""kdevops-style checks of the mirror (what check_docker_mirror.sh runs).

    python3 -m mirror check-mirror CHECK [IMAGE] [--path DIR] [--port N] [--name PREFIX]

CHECK is one of:
  DOCKER_MIRROR_URL     print the mirror's URL; exit 1 when it does not answer
  DOCKER_MIRROR_EXISTS  print true or false
  DOCKER_MIRROR_DIR     print the mirror directory
  IMAGE_EXISTS IMAGE    exit 0 when a pull of IMAGE is served from the mirror's cache
                        alone (its manifest, and its layers: of at least one platform
                        for a multi-platform image), 1 when not; on s3 and azure it asks
                        the store, and exits 3 (cannot tell), naming the store, when the
                        store does not answer, refuses the keys or has no such bucket or
                        container
"""

import argparse

from ..services import status
from .common import add_overrides, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("check", metavar="CHECK",
                        help="DOCKER_MIRROR_URL, DOCKER_MIRROR_EXISTS, DOCKER_MIRROR_DIR or IMAGE_EXISTS")
    parser.add_argument("image", nargs="?", help="the image, for IMAGE_EXISTS")
    add_overrides(parser)


def run(args) -> int:
    text, code = status.check(load_settings(args), args.check, args.image)
    if text is not None:
        print(text)
    return code
