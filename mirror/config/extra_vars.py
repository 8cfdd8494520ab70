"""extra_vars.yaml: the .config as variables for Ansible-style workflows."""

from pathlib import Path

from .. import render
from ..host.files import atomic_write
from ..model.settings import Settings
from . import dotconfig, secrets, settings


def variables(config: dotconfig.DotConfig) -> dict:
    """Every symbol, lowercase without the prefix (as kdevops names them)."""
    return {name.lower(): entry.value for name, entry in config.entries.items()}


def playbook_variables(loaded: Settings) -> dict:
    """What a playbook needs besides the Kconfig symbols: what the docker_mirror_image
    filter (ansible/filter_plugins) takes, from each upstream's Endpoint.

    `docker_mirror_address` is the host the fleet's clients dial
    (Settings.fleet_host: DOCKER_MIRROR_CLIENT_ADDRESS, else a LAN bind
    address, else this host's name for a wildcard bind; 127.0.0.1 for a
    loopback bind). No probe: the playbook runs elsewhere and later, so it
    decides liveness itself (`enabled=`).
    """
    host = loaded.fleet_host
    found = {
        "docker_mirror_address": host,
        "docker_mirror_ports": {u.registry: u.port for u in loaded.upstreams},
        "docker_mirror_urls": {u.registry: f"{'https' if u.endpoint.tls else 'http'}://{host}:{u.port}"
                               for u in loaded.upstreams},
    }
    if loaded.tls_ca:
        # the mirror's CA (generated, or given): the file on this host the playbook copies to clients
        found["docker_mirror_ca_file"] = loaded.tls_ca
    return found


def holds_secret(config: dotconfig.DotConfig) -> bool:
    # a password symbol, or a remote URL typed with user:password@ in it
    return secrets.holds_secret(config)


def write(config: dotconfig.DotConfig, out: str | Path) -> Path:
    # The file name lands in a YAML comment: a newline in it must not start a key.
    source = "".join(c if c.isprintable() else "?" for c in Path(config.path).name)
    text = render.render("extra_vars.yaml.j2", source=source,
                         variables={**variables(config), **playbook_variables(settings.from_dotconfig(config))})
    return atomic_write(out, text, mode=0o600 if holds_secret(config) else 0o644)
