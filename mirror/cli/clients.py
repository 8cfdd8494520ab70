"""Point this host's Docker and containerd at the mirror.

    python3 -m mirror clients [--root DIR] [--daemon-json F] [--docker-pid F] [--containerd-config F]
                              [--certs-dir D] [--no-reload]

Docker: the Docker Hub mirror into registry-mirrors of daemon.json (and the
mirrors into insecure-registries when they speak plain HTTP off loopback),
then dockerd is reloaded. containerd: certs.d/<registry>/hosts.toml for every
mirrored registry. The other clients this host has (mirror/client_table.py:
Docker 29's containerd store, Podman/Buildah/Skopeo/CRI-O, BuildKit, k3s,
RKE2) get the files each reads; each is reported configured, absent, or
not configured and why. --root DIR: every /etc file under DIR instead (an
image or chroot being prepared; the tests). What was added is recorded, so `clients-undo` takes back
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
    parser.add_argument("--root", help="write every client file under this directory instead of / "
                        "(the --daemon-json ... options are then ignored; dockerd is not reloaded)")
    parser.add_argument("--no-reload", action="store_true", help="do not reload dockerd")


def run(args) -> int:
    if args.root:
        paths = ClientPaths.under(Path(args.root))
    else:
        paths = ClientPaths.host(daemon_json=Path(args.daemon_json), docker_pid=Path(args.docker_pid),
                                 containerd_config=Path(args.containerd_config), certs_dir=Path(args.certs_dir))
    report = clients.apply(settings.load(args.config), paths, reload=not (args.no_reload or args.root))
    print("\n".join(report.lines))
    return 0
