"""Session-wide access to the real Docker engine and local registries.

Every test that needs the engine is marked `engine`, so `pytest -m "not
engine"` runs the rest on a host without one, in seconds. Tests that use
the `docker_client` fixture, directly or through another fixture, are
marked here (pytest_collection_modifyitems); a module that needs the
engine without that fixture (it runs the CLI, which talks to the engine
itself) says so with `pytestmark = pytest.mark.engine`.
"""

import subprocess
from pathlib import Path

import docker
import pytest

from mirror.engine.registry_image import build_offline_image, ensure_built_image
from support.upstream import UpstreamRegistry

START_ENGINE = Path(__file__).resolve().parent.parent / "scripts" / "start-docker-engine.sh"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "docker_client" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.engine)


def _engine_client():
    try:
        client = docker.from_env()
        client.ping()
        return client
    except docker.errors.DockerException:
        return None


@pytest.fixture(scope="session")
def docker_client():
    # These tests are about real containers: a missing engine is a failure,
    # never a skip, or CI would go green without testing anything.
    client = _engine_client()
    if client is None:
        started = subprocess.run(["bash", str(START_ENGINE)], stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=120)
        client = _engine_client()
        if client is None:
            pytest.fail(f"no Docker engine, and {START_ENGINE.name} could not start one "
                        f"(exit {started.returncode}):\n{started.stdout}{started.stderr}",
                        pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry_image(docker_client):
    """The image of the registry engine built here, what `make docker-mirror` runs by default
    (made from the engine's build cache, or built now: once per machine)."""
    return ensure_built_image(docker_client)


@pytest.fixture(scope="session")
def debian_registry_image(docker_client):
    """Debian's own /usr/bin/docker-registry wrapped (no azure driver): what an unpullable
    DOCKER_MIRROR_REGISTRY_IMAGE falls back to."""
    return build_offline_image(docker_client)


@pytest.fixture
def make_upstream(tmp_path):
    """Start plain registries on 127.0.0.1 (`make_upstream("quay")`); all stop at teardown."""
    started = []

    def make(name: str = "upstream") -> UpstreamRegistry:
        registry = UpstreamRegistry(tmp_path / name).start()
        started.append(registry)
        return registry

    yield make
    for registry in started:
        registry.stop()


@pytest.fixture
def upstream(make_upstream):
    """A started plain registry on 127.0.0.1, stopped at teardown."""
    return make_upstream()
