"""Set up every enabled mirror on this host, and keep them up (`make docker-mirror`).

    python3 -m mirror docker-mirror [--boot] [--path DIR] [--port N] [--name PREFIX]
    python3 -m mirror mirror ...            (the same verb, older name)

One registry container per enabled upstream (Docker Hub, ghcr.io, quay.io,
registry.k8s.io, a custom one), each pull-through when its upstream answers
and serving its cache read-only when not; then the keeper (a systemd unit,
or a background process), the refresh timer, the metrics and status page
service and the NFS export, as .config asks. Idempotent: a second run with
nothing changed restarts nothing.

--boot brings up the mirrors alone (what the keeper does at each check).
--path, --port and --name override .config (kdevops' docker-mirror-setup.sh),
and are passed on to the keeper and refresh it starts.
"""

import argparse
import sys

from ..config import exposure
from ..engine.client import connect
from ..services import install
from .common import add_overrides, load_settings, override_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--boot", action="store_true",
                        help="the mirrors alone: re-check upstreams, (re)start the containers; "
                        "no units, keeper or refresh (what the keeper does at each check)")
    add_overrides(parser)


def run(args) -> int:
    loaded = load_settings(args)
    for line in exposure.warnings(loaded) if loaded.enabled else ():
        print(line, file=sys.stderr)
    report = install.docker_mirror(loaded, connect(), boot=args.boot, mirror_args=override_args(args))
    for upstream in loaded.upstreams:
        if upstream.key in report.actions:
            print(f"{upstream.registry}: {report.modes[upstream.key]} mirror on "
                  f"{upstream.endpoint.listen} ({report.actions[upstream.key]})")
    return 0
