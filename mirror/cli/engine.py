"""Build the registry engine once per machine: distribution from Debian's source package, patched.

    python3 -m mirror engine [--rebuild] [--test] [--apt] [--no-image]

distribution 2.8 from `apt-get source docker-registry`, with the azure
driver left in and patches/distribution/ applied, built with Debian's Go;
then its image (when the Docker engine answers). A build whose recipe and
patches did not change is reused. `make engine` runs this with
--apt. See docs/engine.md.
"""

import argparse

from ..engine.client import connect
from ..services import engine


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rebuild", action="store_true",
                        help="build again, fetching Debian's source anew (a cached build is reused otherwise)")
    parser.add_argument("--test", action="store_true",
                        help="then run Go's own tests of the proxy and the azure driver in the patched tree")
    parser.add_argument("--apt", action="store_true",
                        help="may add a deb-src source, run apt-get update and install the build's packages "
                        "(make deps); otherwise a missing one is an error")
    parser.add_argument("--no-image", action="store_true", help="the binary only, no image")


def run(args) -> int:
    report = engine.run(rebuild=args.rebuild, apt=args.apt, test=args.test,
                        image=not args.no_image, connect=connect)
    print("\n".join(report.lines))
    return 0
