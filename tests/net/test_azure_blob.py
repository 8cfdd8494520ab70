"""mirror.net.azure_blob against a real Azure Blob service (Azurite over HTTPS): what the warm
engine and setup rely on, through Azure's SDK.

Blobs are put here as distribution 2.8's driver names them ("/docker/...":
the URL path is "/<container>//docker/..."), by a raw signed request, so a
size read by the product finds them only if the SDK sends that same path.
Also: a wrong key, an untrusted certificate and a dead store are WarmErrors
that say what to fix, never with the key in them, after few attempts; and
nothing comes from the environment (proxies, requests' CA bundle).
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from mirror.errors import StoreError, WarmError
from mirror.model.settings import Storage
from mirror.net import azure_blob
from support import azurite as az
from support.upstream import free_port

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with az.service(tmp_path_factory.mktemp("azurite")) as service:
        yield service


@pytest.fixture(scope="module")
def storage(azurite) -> Storage:
    """A mirror's storage on Azurite, one blob of library/alpine cached in its dockerhub container."""
    storage = Storage("azure", "", azure_account_name=azurite.account, azure_account_key=azurite.key,
                      azure_container="dmnet", azure_realm=azurite.realm, ca_bundle=str(azurite.ca))
    container = azure_blob.Container(storage, "dockerhub")
    assert azurite.request("PUT", f"/{container.container}?restype=container").status == 201
    for key, body in ((container.data_key(DIGEST), b"x" * 1234),
                      (container.link_key("library/alpine", DIGEST), DIGEST.encode())):
        assert key.startswith("/")
        answer = azurite.request("PUT", f"/{container.container}/{key}", body=body,
                                 headers={"x-ms-blob-type": "BlockBlob"})
        assert answer.status == 201, answer.data
    return storage


def test_blobs_named_as_the_driver_names_them_are_found(azurite, storage):
    container = azure_blob.Container(storage, "dockerhub")
    assert f"{storage.azure_container}-dockerhub" == container.container
    assert set(azurite.list(container.container)) == {container.data_key(DIGEST),
                                                      container.link_key("library/alpine", DIGEST)}
    assert container.size(container.data_key(DIGEST)) == 1234
    assert container.linked("library/alpine", DIGEST)
    assert not container.linked("library/busybox", DIGEST)
    assert container.size(container.data_key("sha256:" + "cd" * 32)) is None
    assert azure_blob.Container(storage, "ghcr").size(container.data_key(DIGEST)) is None   # no container


def test_a_missing_blob_is_none_and_a_missing_container_a_store_error_naming_it(storage):
    """check-mirror IMAGE_EXISTS reads through read(): a misspelt DOCKER_MIRROR_AZURE_CONTAINER
    must say so (exit 3), not read as "not cached" forever."""
    container = azure_blob.Container(storage, "dockerhub")
    assert container.read(container.data_key(DIGEST), 3) == b"xxx"
    assert container.read(container.data_key("sha256:" + "cd" * 32), 3) is None
    missing = azure_blob.Container(storage, "ghcr")   # no container made for it
    with pytest.raises(StoreError) as err:
        missing.read(missing.data_key(DIGEST), 3)
    text = str(err.value)
    assert text.startswith(f"azure container {storage.azure_container}-ghcr at {missing.endpoint}: GET "), text
    assert "the container does not exist (ContainerNotFound): check DOCKER_MIRROR_AZURE_CONTAINER" in text
    assert storage.azure_account_key not in text


def test_a_refused_key_says_which_setting_and_never_shows_it(storage):
    wrong = az.new_account()[1]
    container = azure_blob.Container(dataclasses.replace(storage, azure_account_key=wrong), "dockerhub")
    with pytest.raises(WarmError, match=r"answered 403 \(Forbidden: the store refuses "
                                        r"DOCKER_MIRROR_AZURE_ACCOUNT_KEY\)") as refused:
        container.size(container.data_key(DIGEST))
    assert wrong not in str(refused.value) and storage.azure_account_key not in str(refused.value)


def test_an_untrusted_certificate_and_a_dead_store_fail_after_few_attempts(storage):
    for changed, cause in ((dict(ca_bundle=""), "unable to get local issuer certificate"),
                           (dict(azure_realm=f"localhost:{free_port()}"), "Connection refused")):
        container = azure_blob.Container(dataclasses.replace(storage, **changed), "dockerhub")
        start = time.monotonic()
        with pytest.raises(WarmError, match=f"azure container {container.container} at "
                                            f"{container.endpoint}: {cause}$"):
            container.size(container.data_key(DIGEST))
        assert time.monotonic() - start < 5   # azure_blob.ATTEMPTS, 0.5 s apart
    assert azure_blob.diagnose(dataclasses.replace(storage, ca_bundle="")).endswith(
        "TLS: certificate verify failed (unable to get local issuer certificate) with this host's CAs "
        "(DOCKER_MIRROR_STORAGE_CA_BUNDLE is empty): give the CA that signed its certificate in "
        "DOCKER_MIRROR_STORAGE_CA_BUNDLE")


def test_nothing_comes_from_the_environment(azurite, storage, monkeypatch):
    closed = f"http://127.0.0.1:{free_port()}"   # a proxy taken from here could not be reached
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, closed)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azurite.ca))   # trusted only through the setting
    monkeypatch.setenv("CURL_CA_BUNDLE", str(azurite.ca))
    container = azure_blob.Container(storage, "dockerhub")
    assert container.size(container.data_key(DIGEST)) == 1234
    assert azure_blob.diagnose(storage) == ""
    assert "certificate verify failed" in azure_blob.diagnose(dataclasses.replace(storage, ca_bundle=""))
