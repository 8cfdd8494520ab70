"""Validate .config: every value checked, every upstream's address shown.

    python3 -m mirror check

Prints `.config: OK (...)`, or the first bad value (its symbol, the value,
where it was set and what is allowed) with exit status 2. Warnings about a
mirror reachable from other hosts without TLS or a password, and about a
DOCKER_MIRROR_CLIENT_ADDRESS that is not this host's (no interface holds it,
or the name does not resolve), go to stderr.
`make check` runs this.
"""

import argparse
import sys

from ..config import exposure, settings
from ..host import addresses


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args) -> int:
    loaded = settings.load(args.config)
    upstreams = ", ".join(f"{u.registry} on {u.endpoint.listen}" for u in loaded.upstreams)
    print(f"{args.config}: OK ({'enabled' if loaded.enabled else 'disabled'}; {upstreams})")
    for line in [*exposure.warnings(loaded), *addresses.client_address_warnings(loaded.client_address)] \
            if loaded.enabled else ():
        print(line, file=sys.stderr)
    return 0
