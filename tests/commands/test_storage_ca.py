"""DOCKER_MIRROR_STORAGE_CA_BUNDLE end to end: a mirror on an object store behind a private CA.

The store is SeaweedFS's S3 gateway serving HTTPS (its -s3.port.https) with
a throwaway CA's certificate for 127.0.0.1, the same kind of setup Azurite
needs for the azure backend (test_azure_storage_ca.py). The registry refuses
the store until the CA file is given, then pulls through and stores in the
bucket.
"""

from __future__ import annotations

import time

import pytest
import requests

from mirror.engine.containers import CONTAINER_STORAGE_CA
from mirror.net.registry_api import RegistryAPI
from support.azurite import throwaway_ca_and_cert
from support.mirrors import Mirror
from support.seaweed import SeaweedS3
from support.upstream import free_port, push_image

BUCKET = "mirror-tls"
ACCESS_KEY, SECRET_KEY = "mirrortls", "s3-tls-secret-key-never-shown"


@pytest.fixture
def https_store(tmp_path):
    ca, cert, key = throwaway_ca_and_cert(tmp_path / "tls", "127.0.0.1")
    port = free_port()
    store = SeaweedS3(tmp_path / "seaweed", ACCESS_KEY, SECRET_KEY,
                      extra_args=(f"-s3.port.https={port}", f"-s3.cert.file={cert}",
                                  f"-s3.key.file={key}"))
    with store:
        store.make_bucket(BUCKET)
        store.https = f"https://127.0.0.1:{port}"
        store.ca = ca
        # TLS with that CA, and only with it
        assert requests.get(store.https + "/", verify=str(ca), timeout=10).status_code == 403
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(store.https + "/", timeout=10)
        yield store


def stored_keys(store: SeaweedS3, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while not (keys := store.list(BUCKET, "/tls/dockerhub")) or not any("/blobs/" in k for k in keys):
        assert time.monotonic() < deadline, keys
        time.sleep(0.2)
    return keys


def test_the_registry_trusts_the_store_only_with_its_ca(tmp_path, docker_client, registry_image,
                                                          https_store, hub):
    digest = push_image(hub.url, "library/alpine", "3.20")
    m = Mirror(tmp_path / "m", hub.url, DOCKER_MIRROR_STORAGE_FILESYSTEM=False,
               DOCKER_MIRROR_STORAGE_S3=True, DOCKER_MIRROR_S3_ENDPOINT=https_store.https,
               DOCKER_MIRROR_S3_BUCKET=BUCKET, DOCKER_MIRROR_S3_ACCESS_KEY_ID=ACCESS_KEY,
               DOCKER_MIRROR_S3_SECRET_KEY=SECRET_KEY, DOCKER_MIRROR_S3_ROOT_DIRECTORY="/tls")
    try:
        # 2.8 reads its proxy state from the store at start, and panics when TLS fails.
        failed = m.setup(check=False)
        assert failed.returncode == 3 and "did not answer" in failed.stderr
        # the panic's message is in the error, not only its goroutine trace
        assert "x509: certificate signed by unknown authority" in failed.stderr
        log = m.container(docker_client).logs().decode(errors="replace")
        assert "panic: s3aws: RequestError: send request failed" in log
        assert "x509: certificate signed by unknown authority" in log

        m.configure(DOCKER_MIRROR_STORAGE_CA_BUNDLE=str(https_store.ca))
        assert "pull-through mirror" in m.setup().stdout
        container = m.container(docker_client)
        mount = next(x for x in container.attrs["Mounts"] if x["Destination"] == CONTAINER_STORAGE_CA)
        assert (mount["Source"], mount["RW"]) == (str(https_store.ca), False)
        assert RegistryAPI(m.url()).get_manifest("library/alpine", "3.20").digest == digest
        assert any(k.endswith("/_manifests/tags/3.20/current/link") for k in stored_keys(https_store))
    finally:
        m.remove(docker_client)
