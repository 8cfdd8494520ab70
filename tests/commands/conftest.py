"""Fixtures the command tests share: an upstream registry and mirrors on the real engine."""

import pytest

from support.mirrors import mirror_factory
from support.seaweed import SeaweedS3
from support.upstream import UpstreamRegistry


@pytest.fixture
def hub(tmp_path):
    with UpstreamRegistry(tmp_path / "hub") as registry:
        yield registry


@pytest.fixture
def make_mirror(tmp_path, docker_client, registry_image):
    with mirror_factory(docker_client, lambda name: tmp_path / name) as make:
        yield make


@pytest.fixture
def seaweed(request, tmp_path):
    """A SeaweedFS S3 store of this test's own, with the module's bucket made.

    The module names its BUCKET, ACCESS_KEY and SECRET_KEY (each module its own, so that
    a failure's logs and keys point at one file), and SEAWEED_STORE if it needs a
    SeaweedS3 subclass (a store whose volume server can be killed, say)."""
    module = request.module
    store_class = getattr(module, "SEAWEED_STORE", SeaweedS3)
    with store_class(tmp_path / "seaweed", module.ACCESS_KEY, module.SECRET_KEY) as store:
        store.make_bucket(module.BUCKET)
        yield store
