"""`make docker-mirror` on a real Docker engine, with local upstreams on loopback.

One mirror (Docker Hub + a ghcr.io stand-in) is set up per module and driven
through the CLI the Make targets call; the tests run in order, each leaving
the mirror running for the next.
"""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from mirror.services import clients
from mirror.config.kconfig import ROOT
from mirror.engine import containers
from mirror.host.client_files import ClientPaths
from mirror.model.modes import OFFLINE, PULL_THROUGH
from support.mirrors import Mirror
from support.pullthrough import real_daemon_json
from support.upstream import UpstreamRegistry, free_port, push_image

CONTAINERD = "/var/run/docker/containerd/containerd.sock"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with UpstreamRegistry(tmp_path_factory.mktemp("hub")) as registry:
        yield registry


@pytest.fixture(scope="module")
def ghcr(tmp_path_factory):
    with UpstreamRegistry(tmp_path_factory.mktemp("ghcr")) as registry:
        yield registry


@pytest.fixture(scope="module")
def mirror(tmp_path_factory, docker_client, registry_image, hub, ghcr):
    m = Mirror(tmp_path_factory.mktemp("mirror"), hub.url, ghcr.url)
    m.digests = {
        "minio": push_image(hub.url, "minio/minio", "RELEASE.2023-03-20T20-16-18Z"),
        "alpine": push_image(hub.url, "library/alpine", "3.20"),
        "router": push_image(ghcr.url, "vllm-project/production-stack/router", "latest"),
    }
    m.first_setup = m.setup()
    yield m
    m.remove(docker_client)


@pytest.fixture
def daemon_mirror(mirror, tmp_path):
    """This host's dockerd pointed at the mirror by the product itself
    (`make docker-mirror-clients`), then undone; daemon.json comes back as it was."""
    paths = ClientPaths(containerd_config=tmp_path / "config.toml", certs_dir=tmp_path / "certs.d")
    with real_daemon_json():
        clients.apply(mirror.settings, paths)
        yield
        clients.undo(mirror.settings)


def repo_digest(client, ref):
    image = client.images.get(ref)
    return {d.split("@", 1)[1] for d in image.attrs["RepoDigests"]}


def cached(mirror, key, repository, tag):
    tags = mirror.storage(key) / "docker/registry/v2/repositories" / repository
    return (tags / "_manifests/tags" / tag / "current/link").exists()


def remove_image(client, ref):
    try:
        client.images.remove(ref, force=True)
    except Exception:
        pass


def test_setup_creates_layout_and_one_container_per_upstream(mirror, docker_client):
    result = mirror.first_setup
    root = mirror.tmp / "mirror"
    for path in ("registry/dockerhub", "registry/ghcr", "config/config.yml", "config/ghcr.yml",
                 "images/manifest.txt", "images/archives", "logs"):
        assert (root / path).exists(), path
    assert oct((root / "config/config.yml").stat().st_mode & 0o777) == "0o600"
    for key in ("dockerhub", "ghcr"):
        container = mirror.container(docker_client, key)
        assert container.status == "running"
        assert container.labels[containers.LABEL_MODE] == PULL_THROUGH
        assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert f"docker.io: pull-through mirror on 127.0.0.1:{mirror.port} (created)" in result.stdout


def test_docker_pull_through_registry_mirrors(mirror, docker_client, daemon_mirror):
    ref = "minio/minio:RELEASE.2023-03-20T20-16-18Z"
    remove_image(docker_client, ref)
    docker_client.images.pull(ref)
    assert repo_digest(docker_client, ref) == {mirror.digests["minio"]}
    assert cached(mirror, "dockerhub", "minio/minio", "RELEASE.2023-03-20T20-16-18Z")
    remove_image(docker_client, ref)


def test_ctr_pull_of_ghcr_image_through_hosts_dir(mirror, tmp_path):
    hosts = tmp_path / "certs.d" / "ghcr.io"
    hosts.mkdir(parents=True)
    (hosts / "hosts.toml").write_text(
        f'server = "https://ghcr.io"\n\n[host."{mirror.url(mirror.ghcr_port)}"]\n'
        '  capabilities = ["pull", "resolve"]\n')
    ref = "ghcr.io/vllm-project/production-stack/router:latest"
    ctr = ["ctr", "--address", CONTAINERD, "--namespace", mirror.prefix]
    try:
        subprocess.run([*ctr, "image", "pull", "--hosts-dir", str(tmp_path / "certs.d"), ref],
                       check=True, capture_output=True, timeout=60)
        listing = subprocess.run([*ctr, "image", "ls"], check=True, capture_output=True, text=True).stdout
        assert mirror.digests["router"] in listing
        assert cached(mirror, "ghcr", "vllm-project/production-stack/router", "latest")
    finally:
        subprocess.run([*ctr, "image", "rm", "--sync", ref], capture_output=True)
        subprocess.run([*ctr, "namespace", "rm", mirror.prefix], capture_output=True)


def test_second_run_restarts_nothing_and_is_fast(mirror, docker_client):
    before = {k: mirror.container(docker_client, k).attrs["State"]["StartedAt"] for k in ("dockerhub", "ghcr")}
    start = time.monotonic()
    result = mirror.setup()
    elapsed = time.monotonic() - start
    after = {k: mirror.container(docker_client, k).attrs["State"]["StartedAt"] for k in ("dockerhub", "ghcr")}
    assert after == before
    assert result.stdout.count("(unchanged)") == 2
    assert elapsed < 2.0, f"idempotent run took {elapsed:.2f} s"


def test_removed_or_exited_container_is_replaced(mirror, docker_client):
    mirror.container(docker_client, "dockerhub").remove(force=True, v=True)
    mirror.container(docker_client, "ghcr").stop(timeout=1)
    result = mirror.setup()
    assert "docker.io: pull-through mirror" in result.stdout and "(created)" in result.stdout
    assert "ghcr.io: pull-through mirror" in result.stdout and "(restarted)" in result.stdout
    assert requests.get(mirror.url() + "/v2/", timeout=5).status_code == 200


def test_changed_config_recreates_only_that_mirror(mirror, docker_client):
    hub_id = mirror.container(docker_client, "dockerhub").id
    mirror.ghcr_port = free_port()
    mirror.configure()
    result = mirror.setup()
    assert "(recreated)" in result.stdout and "(unchanged)" in result.stdout
    assert mirror.container(docker_client, "dockerhub").id == hub_id
    assert mirror.container(docker_client, "ghcr").labels[containers.LABEL_ADDRESS] == f"127.0.0.1:{mirror.ghcr_port}"
    assert requests.get(mirror.url(mirror.ghcr_port) + "/v2/", timeout=5).status_code == 200


def test_pushes_to_a_pull_through_mirror_are_refused(mirror):
    upload = requests.post(mirror.url() + "/v2/library/evil/blobs/uploads/", timeout=5)
    assert upload.status_code in (404, 405)
    manifest = requests.put(mirror.url() + "/v2/library/evil/manifests/latest", timeout=5,
                            headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"},
                            data=b"{}")
    assert manifest.status_code >= 400


def test_loopback_mirror_is_not_reachable_on_other_addresses(mirror):
    assert requests.get(mirror.url() + "/v2/", timeout=5).status_code == 200
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex(("127.0.0.2", mirror.port)) != 0


def test_offline_upstream_serves_cache_then_pulls_through_again(mirror, docker_client, daemon_mirror, hub):
    cached_ref = "minio/minio:RELEASE.2023-03-20T20-16-18Z"
    docker_client.images.pull(cached_ref)  # cache it while the upstream answers
    remove_image(docker_client, cached_ref)
    hub.stop()
    try:
        result = mirror.setup()
        assert "docker.io: offline mirror" in result.stdout
        container = mirror.container(docker_client, "dockerhub")
        assert container.labels[containers.LABEL_MODE] == OFFLINE
        container.restart(timeout=2)  # as after a reboot with no network
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if requests.get(mirror.url() + "/v2/", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        docker_client.images.pull(cached_ref)
        assert repo_digest(docker_client, cached_ref) == {mirror.digests["minio"]}
        status = json.loads(mirror.run("status", "--json").stdout)
        modes = {u["key"]: u["container"]["mode"] for u in status["upstreams"]}
        assert modes["dockerhub"] == OFFLINE
    finally:
        hub.start()
    result = mirror.setup()
    assert "docker.io: pull-through mirror" in result.stdout
    fresh = push_image(hub.url, "library/busybox", "1.36")
    remove_image(docker_client, "busybox:1.36")
    docker_client.images.pull("busybox:1.36")
    assert repo_digest(docker_client, "busybox:1.36") == {fresh}
    remove_image(docker_client, "busybox:1.36")
    remove_image(docker_client, cached_ref)


def test_status_json_and_checks(mirror):
    doc = json.loads(mirror.run("status", "--json").stdout)
    by_key = {u["key"]: u for u in doc["upstreams"]}
    assert by_key["dockerhub"]["answering"] and by_key["ghcr"]["answering"]
    assert by_key["dockerhub"]["container"]["state"] == "running"
    repos = {(c["repository"], c["tag"]) for c in by_key["dockerhub"]["cached"]}
    assert ("minio/minio", "RELEASE.2023-03-20T20-16-18Z") in repos
    script = [str(ROOT / "scripts/check_docker_mirror.sh")]
    env = {**os.environ, "KCONFIG_CONFIG": str(mirror.config)}

    def check(*args):
        return subprocess.run([*script, *args], env=env, capture_output=True, text=True, timeout=30)

    assert check("DOCKER_MIRROR_URL").stdout.strip() == mirror.url()
    assert check("DOCKER_MIRROR_EXISTS").stdout.strip() == "true"
    assert check("DOCKER_MIRROR_DIR").stdout.strip() == str(mirror.tmp / "mirror")
    assert check("IMAGE_EXISTS", "minio/minio:RELEASE.2023-03-20T20-16-18Z").returncode == 0
    assert check("IMAGE_EXISTS", "ghcr.io/vllm-project/production-stack/router:latest").returncode == 0
    assert check("IMAGE_EXISTS", "minio/minio:never-pulled").returncode == 1
    assert check("IMAGE_EXISTS", "quay.io/coreos/etcd:v3.5.5").returncode == 1


def test_status_exits_non_zero_when_a_mirror_is_down(mirror, docker_client):
    mirror.container(docker_client, "ghcr").stop(timeout=1)
    result = mirror.run("status", check=False)
    assert result.returncode != 0
    assert "ghcr.io" in result.stdout
    mirror.setup()


def test_port_held_by_another_process_is_named_and_nothing_starts(mirror, docker_client, tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        other = Mirror(tmp_path, mirror.hub_url, mirror.ghcr_url)
        other.port = port
        other.configure()
        result = other.setup(check=False)
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1" in result.stderr and f"(pid {os.getpid()})" in result.stderr
    assert "Traceback" not in result.stderr
    assert docker_client.containers.list(all=True, filters={"name": other.prefix}) == []


def test_first_setup_starts_a_background_refresh(mirror, docker_client, tmp_path):
    other = Mirror(tmp_path, mirror.hub_url)
    other.configure(DOCKER_MIRROR_REFRESH=True)
    try:
        start = time.monotonic()
        result = other.setup()
        assert time.monotonic() - start < 15
        assert "first refresh started in the background" in result.stdout
        last = tmp_path / "mirror" / "logs" / "last-refresh.json"
        deadline = time.monotonic() + 30
        while not last.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        record = json.loads(last.read_text())
        assert Path(record["log"]).name.startswith("update-")
        assert Path(record["log"]).exists()
    finally:
        other.remove(docker_client)
