"""One host, two configurations (two checkouts: their own .config, prefix and path): setting
up, collecting unconfigured upstreams in, and removing one never touches the other's containers."""

import pytest
import requests

from mirror.engine import containers
from support.mirrors import mirror_factory
from support.upstream import UpstreamRegistry


@pytest.fixture
def make_mirror(tmp_path, docker_client, registry_image):
    with mirror_factory(docker_client, lambda name: tmp_path / name) as make:
        yield make


def test_a_second_configuration_never_touches_the_firsts_containers(tmp_path, make_mirror, docker_client):
    with UpstreamRegistry(tmp_path / "hub") as hub:
        first = make_mirror(hub.url, "first")
        second = make_mirror(hub.url, "second")
        # The second's prefix starts with the first's: a selection by prefix would catch both.
        second.prefix = first.prefix + "x"
        second.configure(DOCKER_MIRROR_CONTAINER_PREFIX=second.prefix)
        assert second.setup().returncode == 0
        label = first.container(docker_client).labels[containers.LABEL_CONFIG]
        assert label == str(first.config)

        assert second.run("remove").returncode == 0
        assert first.container(docker_client).status == "running"
        assert requests.get(f"{first.url()}/v2/", timeout=5).status_code == 200
        assert docker_client.containers.list(all=True, filters={"name": second.prefix}) == []
