"""Fixtures the command tests share: an upstream registry and mirrors on the real engine."""

import pytest

from support.mirrors import mirror_factory
from support.upstream import UpstreamRegistry


@pytest.fixture
def hub(tmp_path):
    with UpstreamRegistry(tmp_path / "hub") as registry:
        yield registry


@pytest.fixture
def make_mirror(tmp_path, docker_client, registry_image):
    with mirror_factory(docker_client, lambda name: tmp_path / name) as make:
        yield make
