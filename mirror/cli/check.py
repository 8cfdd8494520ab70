"""Validate .config: every value checked, every upstream's address shown.

    python3 -m mirror check

Prints `.config: OK (...)`, or the first bad value (its symbol, the value,
where it was set and what is allowed) with exit status 2. Warnings about a
mirror reachable from other hosts without TLS or a password go to stderr.
`make check` runs this.
"""

import argparse
import sys

from ..config import exposure, settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args) -> int:
    loaded = settings.load(args.config)
    upstreams = ", ".join(f"{u.registry} on {u.endpoint.listen}" for u in loaded.upstreams)
    print(f"{args.config}: OK ({'enabled' if loaded.enabled else 'disabled'}; {upstreams})")
    for line in exposure.warnings(loaded) if loaded.enabled else ():
        print(line, file=sys.stderr)
    return 0
