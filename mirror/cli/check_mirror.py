"""kdevops-style checks of the mirror (what check_docker_mirror.sh runs).

    python3 -m mirror check-mirror CHECK [IMAGE]

CHECK is one of:
  DOCKER_MIRROR_URL     print the mirror's URL; exit 1 when it does not answer
  DOCKER_MIRROR_EXISTS  print true or false
  DOCKER_MIRROR_DIR     print the mirror directory
  IMAGE_EXISTS IMAGE    exit 0 when IMAGE is cached, 1 when not
"""

import argparse

from ..config import settings
from ..services import status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("check", metavar="CHECK",
                        help="DOCKER_MIRROR_URL, DOCKER_MIRROR_EXISTS, DOCKER_MIRROR_DIR or IMAGE_EXISTS")
    parser.add_argument("image", nargs="?", help="the image, for IMAGE_EXISTS")


def run(args) -> int:
    text, code = status.check(settings.load(args.config), args.check, args.image)
    if text is not None:
        print(text)
    return code
