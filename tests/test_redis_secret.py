"""The replicas' Redis password (mirror.host.redis_secret): made once, kept 0600, the same in
redis.conf and every replica's config, and a new one changes both sides' container hashes.
(Pure: no Docker engine; Redis itself refuses the unauthenticated in test_render_replicas.)"""

from __future__ import annotations

import stat

import pytest
import yaml

from mirror import render
from mirror.config import settings
from mirror.engine import containers, replicas, tool_images
from mirror.engine.registry_image import RegistryImage
from mirror.host import redis_secret
from mirror.host.layout import Layout
from mirror.model.modes import PULL_THROUGH
from support.configs import write_config

IMAGE = RegistryImage("registry:2", "sha256:" + "0" * 64, 2, "/etc/docker/registry/config.yml", True)
REDIS_IMAGE = tool_images.ToolImage("docker-mirror/redis:test", "sha256:" + "1" * 64)


S3 = {"DOCKER_MIRROR_STORAGE_FILESYSTEM": False, "DOCKER_MIRROR_STORAGE_S3": True,
      "DOCKER_MIRROR_S3_ENDPOINT": "http://127.0.0.1:8333", "DOCKER_MIRROR_S3_BUCKET": "mirror-cache",
      "DOCKER_MIRROR_S3_ACCESS_KEY_ID": "AKIDEXAMPLE", "DOCKER_MIRROR_S3_SECRET_KEY": "secret-key"}


def load(tmp_path, **overrides):
    values = {**S3, "DOCKER_MIRROR_PATH": str(tmp_path / "m"), "DOCKER_MIRROR_REPLICAS": 2,
              "DOCKER_MIRROR_GHCR": True, **overrides}
    return settings.load(write_config(tmp_path / ".config", **values))


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def hashes(s, layout) -> dict[str, str]:
    """{container: config hash} of every replica and of Redis, as setup computes them."""
    specs = containers.plan(s, layout, IMAGE, {u.key: PULL_THROUGH for u in s.upstreams}, "HTTP-SECRET")
    redis = replicas.plan(s, layout)[replicas.REDIS]
    return {**{spec.name: spec.config_hash for spec in specs}, redis.name: replicas._hash(redis, REDIS_IMAGE)}


def test_made_once_kept_0600_and_remade_when_unusable(tmp_path):
    layout = Layout(tmp_path / "m", tmp_path / "m/registry")
    password = redis_secret.ensure(layout)
    path = redis_secret.secret_path(layout)
    assert mode(path) == 0o600 and len(password) >= 32
    assert redis_secret.ensure(layout) == password            # kept across runs
    path.chmod(0o644)
    assert redis_secret.ensure(layout) == password and mode(path) == 0o600   # tightened again
    assert not redis_secret.unusable(layout)
    path.write_text("x\nrequirepass other\n")                  # by hand: not ours, not injected
    assert redis_secret.unusable(layout)                       # setup says so before it re-creates
    remade = redis_secret.ensure(layout)
    assert remade != password and render.REDIS_PASSWORD.fullmatch(remade) and mode(path) == 0o600
    path.unlink()
    assert redis_secret.ensure(layout) not in (password, remade)


def test_one_password_in_redis_conf_and_every_replica_and_a_new_one_recreates_all(tmp_path):
    s = load(tmp_path)
    layout = Layout.of(s)
    before = hashes(s, layout)
    password = redis_secret.read(layout)
    assert password and len(before) == 5   # 2 replicas x 2 upstreams, Redis
    redis = replicas.plan(s, layout)[replicas.REDIS]
    assert f"\nrequirepass {password}\n" in redis.config_text
    specs = containers.plan(s, layout, IMAGE, {u.key: PULL_THROUGH for u in s.upstreams}, "HTTP-SECRET")
    assert {yaml.safe_load(spec.config_text)["redis"]["password"] for spec in specs} == {password}
    assert hashes(s, layout) == before           # same password: no container replaced for nothing
    redis_secret.secret_path(layout).unlink()    # deleted by a user: a new password, on both sides
    after = hashes(s, layout)
    assert redis_secret.read(layout) != password
    assert all(after[name] != before[name] for name in before), (before, after)


def test_a_single_mirror_has_no_redis_password(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_REPLICAS=1, DOCKER_MIRROR_GHCR=False)
    layout = Layout.of(s)
    [spec] = containers.plan(s, layout, IMAGE, {"dockerhub": PULL_THROUGH}, "HTTP-SECRET")
    assert "redis" not in yaml.safe_load(spec.config_text)
    assert not redis_secret.secret_path(layout).exists()


def test_forget_deletes_the_password_and_redis_conf(tmp_path):
    s = load(tmp_path)
    layout = Layout.of(s)
    spec = replicas.plan(s, layout)[replicas.REDIS]
    spec.config_path.write_text(spec.config_text)
    assert redis_secret.forget(layout) == [redis_secret.secret_path(layout), spec.config_path]
    assert not spec.config_path.exists() and redis_secret.read(layout) is None
    assert redis_secret.forget(layout) == []


@pytest.mark.parametrize("password", ["", "short", "a" * 40 + "\nrequirepass x", "a" * 40 + " b"])
def test_render_refuses_a_password_that_could_inject(tmp_path, password):
    with pytest.raises(ValueError):
        render.redis_config(load(tmp_path), password=password)
