"""DOCKER_MIRROR_STORAGE_CA_BUNDLE on the azure backend: Azurite behind a throwaway CA.

distribution 2.8's azure driver makes its container when the registry starts.
A certificate it cannot verify is retried for minutes with nothing in its
log, and a refused key panics: either way setup says what the blob service
answers the product's own signed request (mirror.net.azure_blob.diagnose),
naming the setting to change. With the CA given, the registry trusts
Azurite through that file alone (mounted into the container, no environment),
pulls through and stores in the container.
"""

from __future__ import annotations

import time
import uuid

import pytest

from mirror.engine.containers import CONTAINER_STORAGE_CA
from mirror.net.registry_api import RegistryAPI
from support import azurite as az
from support.mirrors import Mirror
from support.upstream import push_image


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with az.service(tmp_path_factory.mktemp("azurite")) as service:
        yield service


def test_the_registry_trusts_azurite_only_with_its_ca(tmp_path, docker_client, registry_image, azurite, hub):
    digest = push_image(hub.url, "library/alpine", "3.20")
    values = azurite.mirror_settings(f"dm{uuid.uuid4().hex[:10]}")
    del values["DOCKER_MIRROR_STORAGE_CA_BUNDLE"]
    m = Mirror(tmp_path / "m", hub.url, **values)
    container = m.settings.storage.azure_container_for("dockerhub")
    wrong_key = az.new_account()[1]
    try:
        failed = m.setup(check=False)
        out = failed.stdout + failed.stderr
        assert failed.returncode == 3 and "did not answer" in failed.stderr, out
        assert "TLS: certificate verify failed (unable to get local issuer certificate)" in failed.stderr, out
        assert "give the CA that signed its certificate in DOCKER_MIRROR_STORAGE_CA_BUNDLE" in failed.stderr
        assert f"https://{azurite.host}:{azurite.port}" in failed.stderr
        assert "Traceback" not in out and azurite.key not in out
        assert container not in azurite.containers()   # the registry never got through

        # The CA, but a key the service refuses: the registry panics at once, and setup
        # says so without waiting out its start timeout.
        m.configure(DOCKER_MIRROR_STORAGE_CA_BUNDLE=str(azurite.ca), DOCKER_MIRROR_AZURE_ACCOUNT_KEY=wrong_key)
        start = time.monotonic()
        failed = m.setup(check=False)
        out = failed.stdout + failed.stderr
        assert failed.returncode == 3 and "StatusCode=403" in failed.stderr, out
        assert f"refuses DOCKER_MIRROR_AZURE_ACCOUNT_KEY for account {azurite.account} (403)" in failed.stderr
        assert wrong_key not in out and "Traceback" not in out
        assert time.monotonic() - start < 15

        m.configure(DOCKER_MIRROR_AZURE_ACCOUNT_KEY=azurite.key)
        assert "pull-through mirror" in m.setup().stdout
        registry = m.container(docker_client)
        mount = next(x for x in registry.attrs["Mounts"] if x["Destination"] == CONTAINER_STORAGE_CA)
        assert (mount["Source"], mount["RW"]) == (str(azurite.ca), False)
        assert not [e for e in registry.attrs["Config"]["Env"] or [] if e.startswith("SSL_CERT")]
        assert RegistryAPI(m.url()).get_manifest("library/alpine", "3.20").digest == digest
        deadline = time.monotonic() + 30
        while not any(n.endswith("/_manifests/tags/3.20/current/link") for n in azurite.list(container)):
            assert time.monotonic() < deadline, azurite.list(container)
            time.sleep(0.2)
    finally:
        m.remove(docker_client)

