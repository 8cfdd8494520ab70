"""extra_vars.yaml: the .config as variables for Ansible-style workflows."""

from pathlib import Path

from . import dotconfig, render, settings
from .fsutil import atomic_write


def variables(config: dotconfig.DotConfig) -> dict:
    """Every symbol, lowercase without the prefix (as kdevops names them)."""
    return {name.lower(): entry.value for name, entry in config.entries.items()}


def derived(config: dotconfig.DotConfig) -> dict:
    """docker_mirror_address, _ports and _urls: what the docker_mirror_image filter
    (ansible/filter_plugins) needs, computed from the validated settings."""
    from . import rewrite
    return rewrite.playbook_variables(settings.from_dotconfig(config))


def holds_secret(config: dotconfig.DotConfig) -> bool:
    return any(settings.is_secret(name) and entry.value
               for name, entry in config.entries.items())


def write(config: dotconfig.DotConfig, out: str | Path) -> Path:
    text = render.render("extra_vars.yaml.j2", source=Path(config.path).name,
                         variables={**variables(config), **derived(config)})
    return atomic_write(out, text, mode=0o600 if holds_secret(config) else 0o644)
