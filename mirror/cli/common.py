"""What several verbs share: the command line's overrides of .config, and loading the settings."""

from __future__ import annotations

import argparse

from ..config import dotconfig, settings
from ..config.dotconfig import DotConfig
from ..model.settings import Settings

# The command line's overrides of .config (kdevops' docker-mirror-setup.sh DIR PORT NAME):
# (option, symbol, type, help). Setup passes them on to the keeper and the refresh it starts.
OVERRIDES = (
    ("--path", "DOCKER_MIRROR_PATH", str, "mirror directory (overrides DOCKER_MIRROR_PATH)"),
    ("--port", "DOCKER_MIRROR_PORT", int, "Docker Hub mirror port (overrides DOCKER_MIRROR_PORT)"),
    ("--name", "DOCKER_MIRROR_CONTAINER_PREFIX", str,
     "container name prefix (overrides DOCKER_MIRROR_CONTAINER_PREFIX)"),
)


def add_overrides(parser: argparse.ArgumentParser) -> None:
    for option, _, kind, text in OVERRIDES:
        parser.add_argument(option, type=kind, help=text)


def override_args(args) -> list[str]:
    """The overrides given, as words of a command line that repeats them."""
    words = []
    for option, _, _, _ in OVERRIDES:
        value = getattr(args, option[2:])
        if value is not None:
            words += [option, str(value)]
    return words


def load_dotconfig(args) -> DotConfig:
    """.config, with the command line's overrides (when the verb takes them)."""
    config = dotconfig.load(args.config)
    overrides = {symbol: getattr(args, option[2:], None) for option, symbol, _, _ in OVERRIDES}
    overrides = {symbol: value for symbol, value in overrides.items() if value is not None}
    if overrides:
        config = config.with_values(overrides, origin="command line")
    return config


def load_settings(args) -> Settings:
    """The settings of .config, with the command line's overrides (when the verb takes them)."""
    return settings.from_dotconfig(load_dotconfig(args))
