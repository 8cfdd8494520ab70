"""DOCKER_MIRROR_REPLICAS and its port block: read, derived and refused with symbol, value and line."""

from __future__ import annotations

import pytest

from mirror.config import settings
from mirror.errors import ConfigError
from mirror.model.endpoint import debug_port
from mirror.model.replicas import BLOCK, Replicas, replica_names
from support.configs import QUIET_PROBES, rejected_symbol, run_mirror, write_config

S3 = {"DOCKER_MIRROR_STORAGE_FILESYSTEM": False, "DOCKER_MIRROR_STORAGE_S3": True,
      "DOCKER_MIRROR_S3_ENDPOINT": "http://127.0.0.1:8333",
      "DOCKER_MIRROR_S3_BUCKET": "mirror-cache",
      "DOCKER_MIRROR_S3_ACCESS_KEY_ID": "AKIDEXAMPLE",
      "DOCKER_MIRROR_S3_SECRET_KEY": "secret-key"}


def load(tmp_path, **overrides):
    return settings.load(write_config(tmp_path / ".config", **{**S3, **overrides}))


def rejected(tmp_path, symbol, value, **overrides) -> str:
    return str(rejected_symbol(load, tmp_path, symbol, value, **overrides))


def test_one_replica_by_default_even_without_the_symbol(tmp_path):
    s = settings.load(write_config(tmp_path / ".config"))
    assert s.replicas == Replicas() and not s.replicas.enabled


def test_three_replicas_get_the_default_block(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_REPLICAS=3, DOCKER_MIRROR_GHCR=True)
    r = s.replicas
    assert (r.count, r.port_base) == (3, 25000)
    assert [r.port("dockerhub", i) for i in range(3)] == [25000, 25001, 25002]
    assert [r.port("ghcr", i) for i in range(3)] == [25016, 25017, 25018]
    assert (r.redis_port, r.stats_port, r.last_port) == (25080, 25081, 25000 + BLOCK - 1)
    assert (r.redis_db("dockerhub"), r.redis_db("ghcr")) == (0, 1)
    with pytest.raises(ValueError):
        r.port("dockerhub", 3)


def test_an_explicit_base(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_REPLICAS=16, DOCKER_MIRROR_REPLICA_PORT_BASE=40000)
    assert s.replicas.port("dockerhub", 15) == 40015 and s.replicas.redis_port == 40080


def test_names():
    assert replica_names("docker-mirror", "dockerhub", 2) == ["docker-mirror-dockerhub-r1",
                                                              "docker-mirror-dockerhub-r2"]


@pytest.mark.parametrize("value", [0, 17, -1, "three"])
def test_count_out_of_range(tmp_path, value):
    assert "must be an integer from 1 to 16" in rejected(tmp_path, "DOCKER_MIRROR_REPLICAS", value)


def test_filesystem_backend_refuses_replicas(tmp_path):
    with pytest.raises(ConfigError) as caught:
        settings.load(write_config(tmp_path / ".config", DOCKER_MIRROR_REPLICAS=2))
    assert caught.value.symbol == "CONFIG_DOCKER_MIRROR_REPLICAS"
    assert "must be 1 with the filesystem storage backend" in str(caught.value)
    assert "=2" in str(caught.value)


def test_block_past_65535(tmp_path):
    err = rejected(tmp_path, "DOCKER_MIRROR_REPLICA_PORT_BASE", 65500, DOCKER_MIRROR_REPLICAS=2)
    assert "goes past 65535" in err and f"from 1024 to {65536 - BLOCK}" in err


def test_default_block_past_65535_says_where_it_came_from(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, DOCKER_MIRROR_REPLICAS=2, DOCKER_MIRROR_PORT=50000)
    assert caught.value.symbol == "CONFIG_DOCKER_MIRROR_REPLICA_PORT_BASE"
    assert "defaults to DOCKER_MIRROR_PORT+20000=70000" in str(caught.value)


def test_block_over_a_mirror_port(tmp_path):
    err = rejected(tmp_path, "DOCKER_MIRROR_REPLICA_PORT_BASE", 4990, DOCKER_MIRROR_REPLICAS=12)
    assert "already the port of the dockerhub mirror" in err and "5000" in err


def test_replica_port_on_a_mirror_debug_port(tmp_path):
    err = rejected(tmp_path, "DOCKER_MIRROR_REPLICA_PORT_BASE", 14990, DOCKER_MIRROR_REPLICAS=12)
    assert "port of replica 11 of the dockerhub mirror would be 15000, already the debug port" in err


def test_replica_debug_port_on_a_mirror_port(tmp_path):
    err = rejected(tmp_path, "DOCKER_MIRROR_REPLICA_PORT_BASE", 30000, DOCKER_MIRROR_REPLICAS=2,
                   DOCKER_MIRROR_PORT=40000)
    assert "debug port of replica 1 of the dockerhub mirror would be 40000, already the port" in err


def test_block_over_the_status_page_port(tmp_path):
    # The metrics and status page listens on 127.0.0.1 too: a replica there would not start.
    err = rejected(tmp_path, "DOCKER_MIRROR_REPLICA_PORT_BASE", 9594, DOCKER_MIRROR_REPLICAS=2,
                   DOCKER_MIRROR_OBSERVE=True, DOCKER_MIRROR_OBSERVE_PORT=9595)
    assert "the port of replica 2 of the dockerhub mirror would be 9595, already the port of " \
           "the metrics and status page (DOCKER_MIRROR_OBSERVE_PORT)" in err
    # the page switched off holds no port
    assert load(tmp_path, DOCKER_MIRROR_REPLICAS=2, DOCKER_MIRROR_REPLICA_PORT_BASE=9594).replicas.enabled


def test_every_port_distinct_for_all_upstreams(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_REPLICAS=16, DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_QUAY=True,
             DOCKER_MIRROR_K8S=True)
    r = s.replicas
    ports = [p for u in s.upstreams for i in range(16) for p in (r.port(u.key, i), debug_port(r.port(u.key, i)))]
    ports += [u.port for u in s.upstreams] + [u.endpoint.debug_port for u in s.upstreams]
    ports += [r.redis_port, r.stats_port]
    assert len(ports) == len(set(ports)) and max(ports) <= 65535


def test_olddefconfig_on_an_s3_config_made_before_replicas(tmp_path):
    """An s3 .config without the new symbols: `make olddefconfig` adds them at their defaults."""
    path = write_config(tmp_path / ".config", **S3)
    text = path.read_text()
    assert "REPLICA" not in text
    run_mirror("config", "olddefconfig", config=path, env=QUIET_PROBES)
    text = path.read_text()
    assert "CONFIG_DOCKER_MIRROR_REPLICAS=1\n" in text and "CONFIG_DOCKER_MIRROR_REPLICA_PORT_BASE=0\n" in text
    assert settings.load(path).replicas == Replicas()
