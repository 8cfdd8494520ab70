"""The container plan: pure, and stable for an unchanged configuration."""

import pytest

from mirror.config import settings
from mirror.engine import containers
from mirror.engine.registry_image import CONFIG_V2, RegistryImage
from mirror.host.layout import Layout
from mirror.model.endpoint import Endpoint
from mirror.model.modes import OFFLINE, PLAIN, PULL_THROUGH
from support.configs import write_config

IMAGE = RegistryImage("docker-mirror/registry:2.8.2-offline", "sha256:" + "1" * 64, 2, CONFIG_V2, True)
SECRET = "s3cret-http"


def load(tmp_path, **overrides):
    return settings.load(write_config(tmp_path / ".config", olddefconfig=True,
                                      DOCKER_MIRROR_PATH="/mirror/docker", **overrides))


def plan(s, modes=None):
    return containers.plan(s, Layout.of(s), IMAGE, modes or {u.key: PULL_THROUGH for u in s.upstreams}, SECRET)


def test_one_spec_per_upstream_listening_on_its_endpoint(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_BIND_ADDRESS="::")
    hub, ghcr = plan(s, {"dockerhub": PULL_THROUGH, "ghcr": OFFLINE})
    assert (hub.name, hub.mode, hub.address) == ("docker-mirror-dockerhub", PULL_THROUGH, "[::]:5000")
    assert (ghcr.name, ghcr.mode, ghcr.address) == ("docker-mirror-ghcr", OFFLINE, "[::]:5001")
    assert 'addr: "[::]:5001"' in ghcr.config_text and 'addr: "127.0.0.1:15001"' in ghcr.config_text
    assert hub.labels == {containers.LABEL_UPSTREAM: "dockerhub", containers.LABEL_MODE: PULL_THROUGH,
                          containers.LABEL_HASH: hub.config_hash, containers.LABEL_ADDRESS: "[::]:5000",
                          containers.LABEL_MAJOR: "2", containers.LABEL_CONFIG: str(tmp_path / ".config")}
    assert hub.mounts == (("/mirror/docker/config/config.yml", CONFIG_V2, True),
                          ("/mirror/docker/registry/dockerhub", "/var/lib/registry", False))
    assert hub.lasting


def test_the_hash_follows_config_image_and_mounts_only(tmp_path):
    s = load(tmp_path)
    first = plan(s)[0].config_hash
    assert plan(load(tmp_path))[0].config_hash == first  # same .config, same hash
    assert plan(s, {"dockerhub": OFFLINE})[0].config_hash != first
    assert plan(load(tmp_path, DOCKER_MIRROR_PORT=5005))[0].config_hash != first
    assert plan(load(tmp_path, DOCKER_MIRROR_REFRESH_RANDOM_DELAY=0))[0].config_hash == first


def test_the_hash_of_an_unchanged_configuration_is_the_one_earlier_versions_wrote(tmp_path):
    # A mirror set up by an earlier version keeps its containers only while this holds:
    # change it only with a change of the registry config itself, and say so.
    # (083cf7198bc2f0fa: what the flat mirror/registry.py of 87bc86e computed for this input;
    # 943b65ac98edf70a since the cache lifecycle turned storage deletes off: a mirror set up
    # before is re-created once, its request log read first.)
    assert plan(load(tmp_path))[0].config_hash == "943b65ac98edf70a"


def test_tls_and_htpasswd_are_mounted_read_only(tmp_path):
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:$2y$05$" + "a" * 53 + "\n")
    s = load(tmp_path, DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_CERTIFICATE="/etc/ssl/c.pem",
             DOCKER_MIRROR_TLS_KEY="/etc/ssl/k.pem", DOCKER_MIRROR_HTPASSWD=True,
             DOCKER_MIRROR_HTPASSWD_PATH=str(htpasswd))
    mounts = plan(s)[0].mounts
    # the user's file with the product's own user added (mirror.host.credential), not the user's
    assert ("/mirror/docker/config/htpasswd", "/auth/htpasswd", True) in mounts
    assert ("/etc/ssl/c.pem", "/certs/cert.pem", True) in mounts and ("/etc/ssl/k.pem", "/certs/key.pem", True) in mounts


def test_maintenance_registry_is_plain_on_loopback_with_no_auth(tmp_path):
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:$2y$05$" + "a" * 53 + "\n")
    s = load(tmp_path, DOCKER_MIRROR_BIND_ADDRESS="0.0.0.0", DOCKER_MIRROR_HTPASSWD=True,
             DOCKER_MIRROR_HTPASSWD_PATH=str(htpasswd))
    hub = s.upstreams[0]
    spec = containers.maintenance_plan(s, Layout.of(s), IMAGE, hub, Endpoint.of("127.0.0.1", 41000, False), SECRET)
    assert (spec.name, spec.mode, spec.address, spec.lasting) == \
        ("docker-mirror-dockerhub-maintenance", PLAIN, "127.0.0.1:41000", False)
    assert spec.labels == {containers.LABEL_MAINTENANCE: "dockerhub"}  # never taken for a mirror
    assert spec.config_path == "/mirror/docker/config/.maintenance-dockerhub.yml"
    assert spec.mounts == ((spec.config_path, CONFIG_V2, True), ("/mirror/docker/registry/dockerhub",
                                                                 "/var/lib/registry", False))
    assert "auth:" not in spec.config_text and "proxy:" not in spec.config_text
    assert SECRET in spec.config_text and 'addr: "127.0.0.1:51000"' in spec.config_text
    with pytest.raises(ValueError):
        containers.maintenance_plan(s, Layout.of(s), IMAGE, hub, Endpoint.of("127.0.0.1", 41000, True), SECRET)

