"""The keeper: keep the mirrors up with no person involved.

    python3 -m mirror keeper [--path DIR] [--port N] [--name PREFIX]
    python3 -m mirror watch ...             (the same verb, older name)

Re-runs the boot path (probe every upstream; a mirror whose upstream does
not answer serves its cache read-only) when the Docker engine comes back,
when one of the mirror's containers dies, and every
DOCKER_MIRROR_RECHECK_INTERVAL seconds. `make docker-mirror` starts it: as
the PREFIX-keeper.service systemd unit (templates/keeper.service.j2), or as a
background process logging to the mirror's logs/. One keeper per mirror
directory (a lock); the settings are read again before every check. It
exits 0 when the mirror is switched off in .config.
"""

import argparse
import os
from datetime import datetime

from ..engine.client import connect
from ..services import keeper
from .common import add_overrides, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_overrides(parser)


def run(args) -> int:
    def log(line: str) -> None:
        # The journal stamps each line itself; a log file needs the time written in.
        stamp = "" if os.environ.get("JOURNAL_STREAM") else f"{datetime.now():%Y-%m-%d %H:%M:%S} "
        print(f"{stamp}{line}", flush=True)

    return keeper.run(lambda: load_settings(args), connect, log=log)
