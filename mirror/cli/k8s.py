"""Write the Kubernetes manifests of the mirror.

    python3 -m mirror k8s [--out DIR] [--namespace NS] [--registry-image IMAGE] ...

Deployments and Services per upstream, a Secret, ConfigMaps, the refresh
CronJobs and a DaemonSet that gives every node's containerd its hosts.toml,
from the same .config (default DIR: k8s/ beside .config). Secrets generated
once are kept across runs. `make docker-mirror-k8s` runs this. See
docs/kubernetes.md.
"""

import argparse
import sys

from ..config import dotconfig, settings
from ..services import k8s


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help="where to write them (default: k8s/ beside .config)")
    for option, text in k8s.OPTIONS:
        parser.add_argument(option, help=text)


def run(args) -> int:
    config = dotconfig.load(args.config)
    report = k8s.render(settings.from_dotconfig(config), config, args.out, k8s.options(vars(args)))
    print("\n".join(report.warnings), file=sys.stderr, end="\n" if report.warnings else "")
    print("\n".join(report.lines))
    return 0
