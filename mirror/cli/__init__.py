"""The command line: one table of verbs, each a module of mirror.cli; errors become exit codes here.

Every verb is a module with a docstring (its `--help`, man-page style),
`add_arguments(parser)` and `run(args) -> int`, registered once in COMMANDS
(as pip's commands/__init__.py registers its commands). A verb calls into
mirror.services (or mirror.config) and never into another verb. The only
logic here is turning a MirrorError into its message and its exit code
(mirror.errors.EXIT_CODES), in main(), the one place that does it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass

from ..errors import MirrorError, exit_code

DEFAULT_CONFIG = os.environ.get("KCONFIG_CONFIG", ".config")


@dataclass(frozen=True)
class Verb:
    name: str
    module: str                        # under mirror.cli
    summary: str                       # its line in `python3 -m mirror --help`
    aliases: tuple[str, ...] = ()      # older names, kept: installed units and scripts run them


COMMANDS = (
    Verb("config", "config", "run a Kconfig tool on this tree"),
    Verb("extra-vars", "extra_vars", "write extra_vars.yaml from .config"),
    Verb("check", "check", "validate .config"),
    Verb("engine", "engine", "build the registry engine (distribution from the distribution's source "
         "package, with patches/distribution/) and its image, once per machine"),
    Verb("docs", "docs", "write docs/options.md, the options reference, from the Kconfig tree"),
    Verb("docker-mirror", "setup", "set up every enabled mirror (the Docker Hub mirror included)",
         aliases=("mirror",)),
    Verb("keeper", "keeper", "keep the mirrors up (what docker-mirror starts: a systemd unit, "
         "or a background process)", aliases=("watch",)),
    Verb("observe", "observe", "the metrics (/metrics) and status page (/) service that docker-mirror "
         "starts when DOCKER_MIRROR_OBSERVE is on", aliases=("serve-status",)),
    Verb("remove", "remove", "take down what docker-mirror set up (keeper, units, containers, NFS "
         "export); the cache stays unless --purge"),
    Verb("refresh", "refresh", "one refresh run (what the timer starts)"),
    Verb("pull", "pull", "warm the mirror with the images to keep, now"),
    Verb("scan", "scan", "list the image references workflows use"),
    Verb("status", "status", "show what the mirror holds and whether it answers"),
    Verb("gc", "gc", "drop what the cache's lifecycle policy says, and free its disk "
         "(distribution's garbage-collect; the mirror stops meanwhile)"),
    Verb("check-mirror", "check_mirror", "kdevops-style checks (check_docker_mirror.sh)"),
    Verb("image-url", "image_url", "print each image reference as pulled through the mirror "
         "(unchanged when not mirrored, disabled or not answering)"),
    Verb("restore", "restore", "load image archives back into the mirror (pull-through mirrors "
         "included), checking each .sha256"),
    Verb("k8s", "k8s", "write the Kubernetes manifests of the mirror (Deployments, Services, Secret, "
         "ConfigMaps, CronJobs, a DaemonSet)"),
    Verb("clients", "clients", "point this host's clients (Docker, containerd, Podman, BuildKit, "
         "k3s...) at the mirror (undo: clients-undo)"),
    Verb("clients-undo", "clients_undo", "take back exactly what 'clients' added (paths come from its record)"),
)


def _chosen(argv: list[str]) -> str | None:
    """The verb word of `argv`: the first word that is neither an option nor --config's value."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--config":
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Every verb's name and summary; the arguments of the verb `argv` names only.

    Only that verb's module is imported (importlib): each verb's services pull in
    docker, jinja2, prometheus_client..., which `config menuconfig` or `check-mirror`
    should not pay for at start-up."""
    chosen = _chosen(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python3 -m mirror",
                                     description="Kconfig-driven Docker registry mirror.")
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="the .config to read (default: $KCONFIG_CONFIG or .config)")
    verbs = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in COMMANDS:
        if chosen not in (verb.name, *verb.aliases):
            verbs.add_parser(verb.name, aliases=list(verb.aliases), help=verb.summary)
            continue
        module = importlib.import_module(f"{__name__}.{verb.module}")
        sub = verbs.add_parser(verb.name, aliases=list(verb.aliases), help=verb.summary,
                               description=module.__doc__,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    try:
        return args.run(args)
    except MirrorError as err:
        print(f"error: {err}", file=sys.stderr)
        return exit_code(err)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
