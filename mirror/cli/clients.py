"""Point this host's Docker and containerd at the mirror.

    python3 -m mirror clients [--daemon-json F] [--docker-pid F] [--containerd-config F] [--certs-dir D] [--no-reload]

Docker: the Docker Hub mirror into registry-mirrors of daemon.json (and the
mirrors into insecure-registries when they speak plain HTTP off loopback),
then dockerd is reloaded. containerd: certs.d/<registry>/hosts.toml for every
mirrored registry. What was added is recorded, so `clients-undo` takes back
exactly that. `make docker-mirror-clients` runs this. See docs/clients.md.
"""

import argparse
from pathlib import Path

from ..config import settings
from ..host.client_files import ClientPaths
from ..services import clients


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for option, default in zip(("--daemon-json", "--docker-pid", "--containerd-config", "--certs-dir"),
                               (ClientPaths.daemon_json, ClientPaths.docker_pid,
                                ClientPaths.containerd_config, ClientPaths.certs_dir)):
        parser.add_argument(option, default=str(default), help=f"default: {default}")
    parser.add_argument("--no-reload", action="store_true", help="do not reload dockerd")


def run(args) -> int:
    paths = ClientPaths(*(Path(p) for p in (args.daemon_json, args.docker_pid,
                                            args.containerd_config, args.certs_dir)))
    report = clients.apply(settings.load(args.config), paths, reload=not args.no_reload)
    print("\n".join(report.lines))
    return 0
