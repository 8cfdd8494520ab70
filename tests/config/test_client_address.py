"""DOCKER_MIRROR_CLIENT_ADDRESS: what the fleet dials, in extra_vars.yaml without -e."""

import socket

import pytest

from mirror.config import extra_vars, settings
from mirror.errors import ConfigError
from support.configs import write_config


def fleet(tmp_path, **overrides) -> dict:
    loaded = settings.load(write_config(tmp_path / ".config", olddefconfig=True, **overrides))
    return extra_vars.playbook_variables(loaded)


def test_a_lan_bind_is_what_the_fleet_dials(tmp_path):
    ev = fleet(tmp_path, DOCKER_MIRROR_BIND_ADDRESS="198.18.77.1")
    assert ev["docker_mirror_address"] == "198.18.77.1"
    assert ev["docker_mirror_urls"]["docker.io"] == "http://198.18.77.1:5000"


def test_a_wildcard_bind_gives_this_hosts_name(tmp_path):
    assert fleet(tmp_path, DOCKER_MIRROR_BIND_ADDRESS="0.0.0.0")["docker_mirror_address"] == socket.gethostname()


def test_the_client_address_wins_and_loopback_stays_loopback(tmp_path):
    ev = fleet(tmp_path, DOCKER_MIRROR_BIND_ADDRESS="0.0.0.0", DOCKER_MIRROR_CLIENT_ADDRESS="mirror.lan")
    assert ev["docker_mirror_address"] == "mirror.lan"
    assert ev["docker_mirror_urls"]["docker.io"] == "http://mirror.lan:5000"
    assert fleet(tmp_path, DOCKER_MIRROR_CLIENT_ADDRESS="fd00::5")["docker_mirror_urls"]["docker.io"] \
        == "http://[fd00::5]:5000"
    assert fleet(tmp_path)["docker_mirror_address"] == "127.0.0.1"


@pytest.mark.parametrize("bad", ["0.0.0.0", "http://x", "a b", "-x", "x" * 300, "1.2.3.4.5"])
def test_a_bad_client_address_is_refused_by_name(tmp_path, bad):
    with pytest.raises(ConfigError, match="CONFIG_DOCKER_MIRROR_CLIENT_ADDRESS"):
        fleet(tmp_path, DOCKER_MIRROR_CLIENT_ADDRESS=bad)
