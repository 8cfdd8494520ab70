"""Docker 29's containerd image store reads /etc/docker/certs.d/<registry>/hosts.toml (and
registry-mirrors for docker.io only): `docker-mirror-clients` writes one there for every
mirrored registry. Checked with the same parser: `ctr --hosts-dir <root>/etc/docker/certs.d`
on the engine's own containerd pulls ghcr.io and quay.io images through their mirror ports
with the files the product wrote, under a root of the test's own (never this host's /etc);
over TLS, with the generated CA the hosts.toml names and the client user's Authorization header.
"""

from pathlib import Path

import tomllib
import uuid

import pytest

from mirror.config import settings as settings_mod
from mirror.host.client_files import ClientPaths
from mirror.services import clients
from support.configs import write_config
from support.logged_proxy import tls_htpasswd_mirror
from support.pullthrough import ProxyRegistry, ctr, ctr_remove_namespace
from support.upstream import UpstreamRegistry, free_ports, push_image


@pytest.fixture(scope="module")
def store_world(tmp_path_factory, docker_client):
    root = tmp_path_factory.mktemp("docker-store")
    tag = f"store-{uuid.uuid4().hex[:8]}"
    started, found = [], {}
    try:
        for key, repo in (("ghcr", "vllm-project/router"), ("quay", "coreos/etcd")):
            upstream = UpstreamRegistry(root / f"{key}-up").start()
            started.append(upstream)
            digest = push_image(upstream.url, repo, tag)
            proxy = ProxyRegistry(root / f"{key}-mirror", upstream.url).start()
            started.append(proxy)
            found[key] = dict(proxy=proxy, repo=repo, digest=digest)
        (hub_port,) = free_ports(1)
        config = write_config(root / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(root / "mirror"),
                              DOCKER_MIRROR_PORT=hub_port,
                              DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_GHCR_PORT=found["ghcr"]["proxy"].port,
                              DOCKER_MIRROR_QUAY=True, DOCKER_MIRROR_QUAY_PORT=found["quay"]["proxy"].port)
        settings = settings_mod.load(config)
        paths = ClientPaths.under(root / "host", search_path="/usr/bin:/usr/sbin")   # dockerd is found there
        report = clients.apply(settings, paths, reload=False)
        yield dict(root=root, tag=tag, registries=found, settings=settings, paths=paths, report=report)
    finally:
        for registry in reversed(started):
            registry.stop()


@pytest.fixture
def namespace():
    name = f"dmstore-{uuid.uuid4().hex[:8]}"
    yield name
    ctr_remove_namespace(name)


def test_hosts_toml_for_every_mirrored_registry_under_docker_certs_d(store_world):
    hosts_dir = store_world["paths"].docker_hosts_dir
    for registry, key in (("docker.io", None), ("ghcr.io", "ghcr"), ("quay.io", "quay")):
        doc = tomllib.loads((hosts_dir / registry / "hosts.toml").read_text())
        assert doc["server"] == ("https://registry-1.docker.io" if key is None else f"https://{registry}")
        if key:
            assert list(doc["host"]) == [store_world["registries"][key]["proxy"].url]
    assert any(line.startswith("client Docker 29 containerd image store") and "configured" in line
               for line in store_world["report"].lines)


@pytest.mark.parametrize("key, registry", [("ghcr", "ghcr.io"), ("quay", "quay.io")])
def test_ctr_pulls_through_the_mirror_with_the_files_under_etc_docker(store_world, namespace, key, registry):
    r = store_world["registries"][key]
    ref = f"{registry}/{r['repo']}:{store_world['tag']}"
    pulled = ctr(namespace, "image", "pull", "--hosts-dir", str(store_world["paths"].docker_hosts_dir), ref,
                 check=False)
    assert pulled.returncode == 0, pulled.stderr
    listing = ctr(namespace, "image", "ls").stdout.splitlines()[1:]
    assert {line.split()[0]: line.split()[2] for line in listing}[ref] == r["digest"]
    assert r["proxy"].cached(r["repo"], store_world["tag"])


def test_undo_removes_the_hosts_files(store_world):
    clients.undo(store_world["settings"], reload=False)
    assert not store_world["paths"].docker_hosts_dir.exists()


def test_ctr_pulls_over_tls_with_the_ca_and_the_header_the_hosts_toml_names(tmp_path, namespace):
    tag = f"store-tls-{uuid.uuid4().hex[:8]}"
    with UpstreamRegistry(tmp_path / "up") as upstream:
        digest = push_image(upstream.url, "coreos/etcd", tag)
        with tls_htpasswd_mirror(tmp_path, upstream, lambda port: dict(
                DOCKER_MIRROR_QUAY=True, DOCKER_MIRROR_QUAY_PORT=port)) as (settings, mirror):
            paths = ClientPaths.under(tmp_path / "host", search_path="/usr/bin:/usr/sbin")
            clients.apply(settings, paths, reload=False)
            hosts = paths.docker_hosts_dir / "quay.io/hosts.toml"
            host = tomllib.loads(hosts.read_text())["host"][mirror.url]
            assert Path(host["ca"]).read_bytes() == Path(settings.tls_ca).read_bytes()
            assert hosts.stat().st_mode & 0o777 == 0o600
            ref = f"quay.io/coreos/etcd:{tag}"
            pulled = ctr(namespace, "image", "pull", "--hosts-dir", str(paths.docker_hosts_dir), ref, check=False)
            assert pulled.returncode == 0, pulled.stderr
            assert mirror.cached("coreos/etcd", tag)
            assert any("auth.user.name=alice" in line and f"/v2/coreos/etcd/manifests/{tag}" in line
                       for line in mirror.log_path.read_text().splitlines()), mirror.log_tail()
            listing = ctr(namespace, "image", "ls").stdout.splitlines()[1:]
            assert {line.split()[0]: line.split()[2] for line in listing}[ref] == digest
            clients.undo(settings, reload=False)
