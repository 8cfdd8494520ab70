"""The metrics and status page service (Kconfig "Metrics and status page", DOCKER_MIRROR_OBSERVE).

    python3 -m mirror observe [--textfile] [--path DIR] [--port N] [--name PREFIX]
    python3 -m mirror serve-status ...      (the same verb, older name)

A small read-only HTTP server on DOCKER_MIRROR_OBSERVE_ADDRESS:PORT:
/metrics (Prometheus), / (the status page), /status.json and the refresh
logs; with the mirror's TLS and htpasswd when it has them. A sampler counts
traffic every DOCKER_MIRROR_OBSERVE_INTERVAL seconds and writes node_exporter's
textfile when DOCKER_MIRROR_OBSERVE_TEXTFILE_DIR is set. `make docker-mirror`
starts it as the PREFIX-observe.service unit (templates/observe.service.j2).

--textfile takes one sample, writes the textfile and exits (for a cron job
or timer instead of the service).
"""

import argparse

from ..services import observe, observe_serve
from .common import add_overrides, load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--textfile", action="store_true",
                        help="take one sample, write the textfile collector's file and exit")
    add_overrides(parser)


def run(args) -> int:
    loaded = load_settings(args)
    if args.textfile:
        service = observe_serve.Service(loaded)
        service.tick()
        print(observe.write_textfile(loaded, service.collectors) or
              "no DOCKER_MIRROR_OBSERVE_TEXTFILE_DIR configured: sampled only")
        return 0
    return observe_serve.serve(loaded, log=lambda line: print(line, flush=True),
                               reload=lambda: load_settings(args))
