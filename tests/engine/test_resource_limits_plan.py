"""Every container the product runs has a memory and a pids limit, from Kconfig (pure: no engine)."""

import dataclasses

import pytest
import yaml

from mirror.config import settings
from mirror.engine import containers, replicas
from mirror.engine.registry_image import CONFIG_V2, RegistryImage
from mirror.errors import ConfigError
from mirror.host.layout import Layout
from mirror.model.endpoint import Endpoint
from mirror.model.modes import PULL_THROUGH
from mirror.model.resources import MIB, Resources
from support.configs import write_config

IMAGE = RegistryImage("docker-mirror/registry:2.8.2-offline", "sha256:" + "1" * 64, 2, CONFIG_V2, True)
S3 = {"DOCKER_MIRROR_STORAGE_FILESYSTEM": False, "DOCKER_MIRROR_STORAGE_S3": True,
      "DOCKER_MIRROR_S3_ENDPOINT": "http://127.0.0.1:8333", "DOCKER_MIRROR_S3_BUCKET": "mirror-cache",
      "DOCKER_MIRROR_S3_ACCESS_KEY_ID": "AKIDEXAMPLE", "DOCKER_MIRROR_S3_SECRET_KEY": "secret-key"}


def load(tmp_path, **overrides):
    return settings.load(write_config(tmp_path / ".config", olddefconfig=True,
                                      DOCKER_MIRROR_PATH="/mirror/docker", **overrides))


def plan(s):
    return containers.plan(s, Layout.of(s), IMAGE, {u.key: PULL_THROUGH for u in s.upstreams}, "secret")


def test_the_defaults_are_kconfigs(tmp_path):
    # Written once, in kconfig/Kconfig.resources: the model has none of its own.
    assert load(tmp_path).resources == Resources(registry_memory_mb=512, collect_memory_mb=512,
                                                 haproxy_memory_mb=128, redis_memory_mb=320, pids=1024)


def test_every_registry_container_gets_the_configured_limits(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_REGISTRY_MEMORY_MB=256,
             DOCKER_MIRROR_CONTAINER_PIDS_LIMIT=200)
    specs = plan(s)
    maintenance = containers.maintenance_plan(s, Layout.of(s), IMAGE, s.upstreams[0],
                                              Endpoint.of("127.0.0.1", 5999, False), "secret")
    for spec in [*specs, maintenance]:
        assert spec.limits.docker_options() == {"mem_limit": 256 * MIB, "memswap_limit": 256 * MIB,
                                                "pids_limit": 200}, spec.name
    assert len(specs) == 2


def test_the_collection_has_its_own_memory_limit(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_GC_MEMORY_MB=2048, DOCKER_MIRROR_CONTAINER_PIDS_LIMIT=100)
    assert s.resources.collect.docker_options() == {"mem_limit": 2048 << 20, "memswap_limit": 2048 << 20,
                                                    "pids_limit": 100}
    assert s.resources.registry.memory_mb == 512


def test_replicas_haproxy_and_redis_get_theirs_and_redis_evicts_below_its_limit(tmp_path):
    s = load(tmp_path, **S3, DOCKER_MIRROR_REPLICAS=2, DOCKER_MIRROR_HAPROXY_MEMORY_MB=64,
             DOCKER_MIRROR_REDIS_MEMORY_MB=192, DOCKER_MIRROR_REGISTRY_MEMORY_MB=1024)
    shared = replicas.plan(s, Layout.of(s))
    assert shared[replicas.LB].limits.memory_mb == 64
    assert shared[replicas.REDIS].limits.memory_mb == 192
    assert "maxmemory 128mb" in shared[replicas.REDIS].config_text   # 192 less 64 of Redis's own
    assert [spec.limits.memory_mb for spec in plan(s)] == [1024, 1024]


def test_a_limit_out_of_its_range_names_the_symbol_and_the_range(tmp_path):
    # As a hand-edited .config has it (olddefconfig would put the default back).
    with pytest.raises(ConfigError) as caught:
        settings.load(write_config(tmp_path / ".config", DOCKER_MIRROR_REGISTRY_MEMORY_MB=16))
    assert "DOCKER_MIRROR_REGISTRY_MEMORY_MB" in str(caught.value) and "64" in str(caught.value)


def test_changing_a_limit_replaces_the_container_not_the_config(tmp_path):
    # The limits are checked on the live container (HostConfig), not hashed into the
    # config: the registry's own config text stays the same.
    small, large = plan(load(tmp_path, DOCKER_MIRROR_REGISTRY_MEMORY_MB=256))[0], plan(load(tmp_path))[0]
    assert small.config_text == large.config_text and small.limits != large.limits
    assert yaml.safe_load(small.config_text)["http"]
    assert dataclasses.replace(small, limits=large.limits) == large
