"""Write extra_vars.yaml: every .config symbol as a variable, for Ansible-style workflows.

    python3 -m mirror extra-vars [--out FILE]

The values are validated first (a .config that does not validate is refused,
never published); the mirrors' addresses are added as the playbooks and the
docker_mirror_image filter take them. `make extra_vars.yaml` runs this.
"""

import argparse

from ..config import dotconfig, extra_vars, settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="extra_vars.yaml")


def run(args) -> int:
    config = dotconfig.load(args.config)
    settings.from_dotconfig(config)  # refuse to publish values that do not validate
    path = extra_vars.write(config, args.out)
    print(f"wrote {path}")
    return 0
