"""CI smoke test: the engine, the offline registry image and the upstream
helpers all work for real on this host."""

import json
import uuid

import pytest
import requests

from mirror.engine.registry_image import CONFIG_V2
from support.upstream import MEDIA, UpstreamRegistry, free_port, push_image, wait_for_v2

TEST_LABEL = {"docker-mirror-test": "1"}

MINIMAL_CONFIG = """\
version: 0.1
log:
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
"""


@pytest.fixture
def registry_container(docker_client, registry_image, tmp_path):
    """The registry image running with a mounted config, on 127.0.0.1 only."""
    config = tmp_path / "config.yml"
    config.write_text(MINIMAL_CONFIG)
    port = free_port()
    container = docker_client.containers.run(
        registry_image.ref, detach=True, name=f"docker-mirror-test-{uuid.uuid4().hex[:12]}",
        labels=TEST_LABEL, ports={"5000/tcp": ("127.0.0.1", port)},
        volumes={str(config): {"bind": registry_image.config_path, "mode": "ro"}},
    )
    try:
        try:
            wait_for_v2(f"http://127.0.0.1:{port}")
        except RuntimeError as err:
            container.reload()
            pytest.fail(f"{err}\nstatus {container.status}, logs:\n{container.logs().decode()}")
        yield port
    finally:
        container.remove(force=True, v=True)


def _remove_image(client, ref):
    try:
        client.images.remove(ref, force=True)
    except Exception:  # already gone is fine; nothing else depends on it
        pass


def test_engine_answers(docker_client):
    assert docker_client.ping() is True
    assert docker_client.version()["ApiVersion"]


def test_registry_image_is_distribution_2(registry_image):
    assert registry_image.major == 2
    assert registry_image.config_path == CONFIG_V2


def test_registry_container_serves_and_docker_pulls_from_it(docker_client, registry_container):
    port = registry_container
    r = requests.get(f"http://127.0.0.1:{port}/v2/", timeout=10)
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"

    digest = push_image(f"http://127.0.0.1:{port}", "library/smoke", "1")
    repo = f"127.0.0.1:{port}/library/smoke"
    try:
        pulled = docker_client.images.pull(repo, tag="1")
        assert f"{repo}@{digest}" in pulled.attrs["RepoDigests"]
    finally:
        _remove_image(docker_client, f"{repo}:1")


def test_published_port_is_loopback_only(docker_client, registry_container):
    port = registry_container
    [container] = docker_client.containers.list(filters={"label": "docker-mirror-test=1",
                                                         "publish": f"{port}"})
    bindings = container.attrs["NetworkSettings"]["Ports"]["5000/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]


def test_upstream_stops_and_comes_back_on_the_same_port(upstream):
    digest = push_image(upstream.url, "minio/minio", "latest")
    port = upstream.port

    upstream.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{upstream.url}/v2/", timeout=5)

    upstream.start()
    assert upstream.port == port
    r = requests.head(f"{upstream.url}/v2/minio/minio/manifests/latest", timeout=10,
                      headers={"Accept": MEDIA["docker"]["manifest"]})
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == digest


def test_upstream_context_manager_stops_the_process(tmp_path):
    with UpstreamRegistry(tmp_path / "cm") as registry:
        assert registry.running
    assert not registry.running


@pytest.mark.parametrize("media", ["docker", "oci"])
def test_multi_platform_push_lists_both_platforms(docker_client, upstream, media):
    digest = push_image(upstream.url, "vllm/vllm-openai", "v1", media=media,
                        platforms=["linux/amd64", "linux/arm64"])
    r = requests.get(f"{upstream.url}/v2/vllm/vllm-openai/manifests/v1", timeout=10,
                     headers={"Accept": MEDIA[media]["index"]})
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == digest
    index = json.loads(r.content)
    assert index["mediaType"] == MEDIA[media]["index"]
    assert [(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]] == [
        ("linux", "amd64"), ("linux", "arm64")]
    for child in index["manifests"]:
        got = requests.head(f"{upstream.url}/v2/vllm/vllm-openai/manifests/{child['digest']}",
                            headers={"Accept": MEDIA[media]["manifest"]}, timeout=10)
        assert got.status_code == 200

    # Docker resolves the index to this host's platform and accepts the child.
    repo = f"{upstream.host}/vllm/vllm-openai"
    try:
        pulled = docker_client.images.pull(repo, tag="v1")
        assert f"{repo}@{digest}" in pulled.attrs["RepoDigests"]
    finally:
        _remove_image(docker_client, f"{repo}:v1")
