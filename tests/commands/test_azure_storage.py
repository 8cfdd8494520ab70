"""The azure storage backend end to end: `make docker-mirror` on a real Azure Blob service.

Azurite (tests/support/azurite.py) serves HTTPS for a new account whose blob
host, `<account>.blob.localhost`, resolves to 127.0.0.1 through an /etc/hosts
line of the test's own; the registry is the product's engine, built with
distribution's azure driver. A pull-through mirror stores each upstream's
cache in a blob container of its own and serves it again with the upstream
gone; cached layers come through the mirror, or, with redirects on, from a
signed URL of the store. What the product hands the driver is checked too:
the endpoint, the container names (Azure's naming rules, as the settings
check them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml

from mirror import render
from mirror.config import settings
from mirror.errors import ConfigError
from mirror.model import modes as L
from mirror.model.manifests import blobs_of
from mirror.net import azure_blob
from mirror.net.registry_api import RegistryAPI
from support import azurite as az
from support.configs import run_mirror, write_config
from support.mirrors import Mirror
from support.upstream import free_port, make_layer, push_image

OTHER_UPSTREAMS = dict(DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_QUAY=True, DOCKER_MIRROR_K8S=True,
                       DOCKER_MIRROR_CUSTOM=True, DOCKER_MIRROR_CUSTOM_REGISTRY="r.example.com",
                       DOCKER_MIRROR_CUSTOM_REMOTE_URL="https://r.example.com")


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with az.service(tmp_path_factory.mktemp("azurite")) as service:
        yield service


def prefix() -> str:
    """A container prefix of this test's own: the service is shared by the module's tests."""
    return f"dm{uuid.uuid4().hex[:10]}"


@pytest.fixture
def azure_mirror(tmp_path, docker_client, registry_image, azurite, hub, make_upstream):
    """A mirror of two upstreams (Docker Hub and ghcr.io) on the azure backend."""
    ghcr = make_upstream("ghcr")
    m = Mirror(tmp_path / "mirror", hub.url, ghcr_url=ghcr.url, **azurite.mirror_settings(prefix()))
    m.ghcr = ghcr
    yield m
    m.remove(docker_client)


def pull(url: str, repository: str, tag: str) -> tuple[str, dict[str, bytes]]:
    """What `docker pull` asks a registry: the manifest, then every blob; their bytes."""
    api = RegistryAPI(url)
    manifest = api.get_manifest(repository, tag)
    blobs = {}
    for descriptor in blobs_of(json.loads(manifest.body)):
        chunks = []
        api.fetch_blob(repository, descriptor["digest"], sink=chunks.append)  # checks the sha256
        blobs[descriptor["digest"]] = b"".join(chunks)
    return manifest.digest, blobs


def data_blob(digest: str) -> str:
    hex_ = digest.split(":", 1)[1]
    return f"/docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data"


def stored_in(azurite, container: str, digest: str, timeout: float = 30) -> bytes:
    """The blob's data in the container; distribution stores a proxied blob in the background."""
    deadline = time.monotonic() + timeout
    while (data := azurite.read(container, data_blob(digest))) is None:
        assert time.monotonic() < deadline, f"{digest} never reached {container}: {azurite.list(container)}"
        time.sleep(0.2)
    return data


def image_exists(config, ref: str, expect: int, timeout: float = 30) -> subprocess.CompletedProcess:
    """check-mirror IMAGE_EXISTS, asked until it exits `expect` (distribution links a proxied
    layer in the store after its data, in the background)."""
    deadline = time.monotonic() + timeout
    while (found := run_mirror("check-mirror", "IMAGE_EXISTS", ref, config=config, check=False)).returncode \
            != expect and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def assert_image_exists_reads_each_upstreams_container(m: Mirror, azurite) -> None:
    """IMAGE_EXISTS answers from the container of the image's upstream: 0 for what was pulled
    through that upstream's mirror, 1 for the same name on the other upstream and for an image
    never pulled; 3 (cannot tell), naming the store, with a key the service refuses or a
    container prefix naming no container."""
    for ref in ("alpine:3.20", "ghcr.io/acme/tool:1"):
        found = image_exists(m.config, ref, 0)
        assert (found.returncode, found.stdout, found.stderr) == (0, "", ""), ref
    for ref in ("acme/tool:1", "ghcr.io/library/alpine:3.20", f"alpine:never-pulled-{uuid.uuid4().hex[:8]}"):
        assert image_exists(m.config, ref, 1, 0).returncode == 1, ref
    key, wrong = m.settings.storage.azure_account_key, az.new_account()[1]
    (m.tmp / "wrong-key.config").write_text(m.config.read_text().replace(key, wrong))
    refused = image_exists(m.tmp / "wrong-key.config", "alpine:3.20", 3, 0)
    assert refused.returncode == 3 and "Traceback" not in refused.stderr, refused.stderr
    hub_container = m.settings.storage.azure_container_for("dockerhub")
    assert f"cannot tell whether alpine:3.20 is cached: azure container {hub_container} at https://" \
        in refused.stderr, refused.stderr
    assert "refuses DOCKER_MIRROR_AZURE_ACCOUNT_KEY" in refused.stderr
    assert key not in refused.stderr and wrong not in refused.stderr
    # A misspelt container prefix is no empty cache: "not cached" forever would hide it.
    misspelt = f"{m.settings.storage.azure_container}x"
    (m.tmp / "misspelt.config").write_text(m.config.read_text().replace(
        f'_AZURE_CONTAINER="{m.settings.storage.azure_container}"', f'_AZURE_CONTAINER="{misspelt}"'))
    missing = image_exists(m.tmp / "misspelt.config", "alpine:3.20", 3, 0)
    assert missing.returncode == 3 and "Traceback" not in missing.stderr, missing.stderr
    assert f"cannot tell whether alpine:3.20 is cached: azure container {misspelt}-dockerhub at https://" \
        in missing.stderr, missing.stderr
    assert "the container does not exist (ContainerNotFound): check DOCKER_MIRROR_AZURE_CONTAINER" \
        in missing.stderr
    assert key not in missing.stderr


def test_pull_through_stores_in_each_upstreams_container_and_serves_offline(azure_mirror, docker_client,
                                                                              azurite, hub):
    m = azure_mirror
    hub_container = m.settings.storage.azure_container_for("dockerhub")
    ghcr_container = m.settings.storage.azure_container_for("ghcr")
    digest = push_image(hub.url, "library/alpine", "3.20")
    ghcr_digest = push_image(m.ghcr.url, "acme/tool", "1", layers=[make_layer(200_000, "az-ghcr")])
    result = m.setup()
    assert "docker.io: pull-through mirror" in result.stdout and "ghcr.io: pull-through mirror" in result.stdout
    # The driver made each upstream's container at start.
    assert {hub_container, ghcr_container} <= set(azurite.containers())
    container = m.container(docker_client)
    assert container.labels["docker-mirror.mode"] == L.PULL_THROUGH
    assert not any("/registry/" in b for b in container.attrs["HostConfig"]["Binds"] or [])

    served, blobs = pull(m.url(), "library/alpine", "3.20")
    assert served == digest and blobs
    for blob_digest in blobs:
        assert "sha256:" + hashlib.sha256(stored_in(azurite, hub_container, blob_digest)).hexdigest() \
            == blob_digest
    assert any(n.endswith("/library/alpine/_manifests/tags/3.20/current/link")
               for n in azurite.list(hub_container))
    ghcr_served, ghcr_blobs = pull(m.url(m.ghcr_port), "acme/tool", "1")
    assert ghcr_served == ghcr_digest
    for blob_digest, data in ghcr_blobs.items():
        assert stored_in(azurite, ghcr_container, blob_digest) == data
    # Each upstream's cache in its own container, never in another's.
    hub_names, ghcr_names = azurite.list(hub_container), azurite.list(ghcr_container)
    assert not [n for n in hub_names if "acme/tool" in n or any(d[7:] in n for d in ghcr_blobs)]
    assert not [n for n in ghcr_names if "library/alpine" in n or any(d[7:] in n for d in blobs)]
    assert not (m.root / "registry" / "dockerhub").exists()  # nothing on this host's disk
    assert_image_exists_reads_each_upstreams_container(m, azurite)
    # Cached layers come from the mirror itself, not by a redirect to the store,
    # which clients on other hosts may not reach (DOCKER_MIRROR_STORAGE_REDIRECT off).
    layer = next(iter(blobs))
    cached = requests.get(f"{m.url()}/v2/library/alpine/blobs/{layer}", allow_redirects=False, timeout=30)
    assert cached.status_code == 200 and cached.content == blobs[layer]

    key = m.settings.storage.azure_account_key
    status = m.run("status", "--json").stdout
    assert key not in status
    upstream = json.loads(status)["upstreams"][0]
    assert upstream["storage_dir"] is None and upstream["store"]["answering"] is True, upstream["store"]
    assert "library/alpine" in [c["repository"] for c in upstream["cached"]]
    assert upstream["disk_bytes"] >= sum(len(b) for b in blobs.values())
    text = m.run("status").stdout
    assert "store:      answering (azure" in text and key not in text
    # The lifecycle reads the containers: what was pulled now is kept.
    collected = m.run("gc")
    assert " image(s) to drop" in collected.stdout and "0 of " in collected.stdout, collected.stdout
    assert stored_in(azurite, hub_container, layer) == blobs[layer]  # still there
    assert key not in container.logs().decode(errors="replace")

    hub.stop()
    m.ghcr.stop()
    result = m.setup()
    assert "docker.io: offline mirror" in result.stdout and "ghcr.io: offline mirror" in result.stdout
    assert m.container(docker_client).labels["docker-mirror.mode"] == L.OFFLINE
    assert pull(m.url(), "library/alpine", "3.20") == (digest, blobs)
    assert pull(m.url(m.ghcr_port), "acme/tool", "1") == (ghcr_digest, ghcr_blobs)


def test_with_redirects_on_cached_layers_are_fetched_from_the_store(tmp_path, docker_client, registry_image,
                                                                     azurite, hub):
    m = Mirror(tmp_path / "redirecting", hub.url, **azurite.mirror_settings(prefix(), DOCKER_MIRROR_STORAGE_REDIRECT=True))
    container = m.settings.storage.azure_container_for("dockerhub")
    try:
        push_image(hub.url, "library/alpine", "3.20")
        m.setup()
        _, blobs = pull(m.url(), "library/alpine", "3.20")
        layer, data = next(iter(blobs.items()))
        stored_in(azurite, container, layer)
        answer = requests.get(f"{m.url()}/v2/library/alpine/blobs/{layer}", allow_redirects=False, timeout=30)
        assert answer.status_code == 307, answer.status_code
        location = answer.headers["Location"]
        assert location.startswith(f"https://{azurite.host}:{azurite.port}/{container}/"), location
        # A read-only shared access signature, which the store honours, and nothing without it.
        signature = parse_qs(urlsplit(location).query)
        assert signature["sp"] == ["r"] and signature["sig"], location
        assert requests.get(location, verify=str(azurite.ca), timeout=30).content == data
        unsigned = requests.get(location.split("?")[0], verify=str(azurite.ca), timeout=30)
        assert unsigned.status_code in (403, 404) and unsigned.content != data
    finally:
        m.remove(docker_client)


# -- what the product hands the driver, against the service itself


def azure_settings(tmp_path, azurite, **overrides):
    values = dict(DOCKER_MIRROR_STORAGE_FILESYSTEM=False, DOCKER_MIRROR_STORAGE_AZURE=True,
                  DOCKER_MIRROR_AZURE_ACCOUNT_NAME=azurite.account, DOCKER_MIRROR_AZURE_ACCOUNT_KEY=azurite.key,
                  DOCKER_MIRROR_AZURE_REALM=azurite.realm, **OTHER_UPSTREAMS)
    return settings.load(write_config(tmp_path / ".config", **{**values, **overrides}))


def driver_params(s, upstream) -> dict:
    text = render.registry_config(s, upstream, major=2, mode=L.PULL_THROUGH, http_secret="x" * 32)
    return yaml.safe_load(text)["storage"]["azure"]


def test_the_longest_container_names_azure_accepts_are_made_and_kept_apart(tmp_path, azurite):
    # The longest prefix the settings allow: Azure's 63-character limit holds for "-dockerhub".
    longest = "c" * 40 + "-" + uuid.uuid4().hex[:12]
    s = azure_settings(tmp_path, azurite, DOCKER_MIRROR_AZURE_CONTAINER=longest)
    assert len(s.upstreams) == 5
    containers = {}
    for upstream in s.upstreams:
        params = driver_params(s, upstream)
        # distribution 2.8 (Azure SDK's getBaseURL): https://<account>.blob.<realm>
        assert f"{params['accountname']}.blob.{params['realm']}" == f"{azurite.host}:{azurite.port}"
        assert params["accountkey"] == azurite.key
        container = params["container"]
        answer = azurite.request("PUT", f"/{container}?restype=container")
        assert answer.status == 201, (container, answer.data)
        blob = f"/{container}/docker/registry/v2/repositories/{upstream.key}/_layers/link"
        answer = azurite.request("PUT", blob, body=upstream.key.encode(),
                                 headers={"x-ms-blob-type": "BlockBlob"})
        assert answer.status == 201, answer.data
        containers[upstream.key] = container
    assert len(set(containers.values())) == 5
    assert max(len(name) for name in containers.values()) == 63
    for key, container in containers.items():
        assert azurite.list(container) == [f"docker/registry/v2/repositories/{key}/_layers/link"]
        answer = azurite.request("GET", f"/{container}/docker/registry/v2/repositories/{key}/_layers/link")
        assert (answer.status, answer.data) == (200, key.encode())


def test_the_service_refuses_another_key(azurite):
    wrong = base64.b64encode(b"not-the-account-key-of-this-one").decode()
    answer = azurite.request("GET", "/?comp=list", key=wrong)
    assert answer.status == 403 and b"AuthorizationFailure" in answer.data


def test_setup_says_what_the_service_answers_the_products_own_request(tmp_path, azurite):
    """What `make docker-mirror` adds when a registry on azure does not start (the 2.8 driver
    retries a store it cannot reach for minutes, with nothing in its log)."""
    def said(**overrides) -> str:
        values = {"DOCKER_MIRROR_STORAGE_CA_BUNDLE": str(azurite.ca), **overrides}
        return azure_blob.diagnose(azure_settings(tmp_path, azurite, **values).storage)

    assert said() == ""
    where = f"the azure blob service https://{azurite.host}:{azurite.port}"
    wrong = az.new_account()[1]
    assert said(DOCKER_MIRROR_AZURE_ACCOUNT_KEY=wrong) == (
        f"{where} (DOCKER_MIRROR_AZURE_ACCOUNT_NAME and _REALM) refuses DOCKER_MIRROR_AZURE_ACCOUNT_KEY "
        f"for account {azurite.account} (403): give the account's access key")
    other_ca, _, _ = az.throwaway_ca_and_cert(tmp_path / "other", azurite.host)
    untrusted = said(DOCKER_MIRROR_STORAGE_CA_BUNDLE=str(other_ca))
    # (OpenSSL's reason: another CA of the same name signed nothing it can check)
    assert re.fullmatch(rf"{re.escape(where)} \(DOCKER_MIRROR_AZURE_ACCOUNT_NAME and _REALM\): TLS: certificate "
                        rf"verify failed \([a-z ]+\) with this host's CAs and "
                        rf"DOCKER_MIRROR_STORAGE_CA_BUNDLE={re.escape(str(other_ca))}: give the CA that "
                        rf"signed its certificate in DOCKER_MIRROR_STORAGE_CA_BUNDLE", untrusted), untrusted
    closed = free_port()   # the name resolves (the test's /etc/hosts line), nothing listens
    assert said(DOCKER_MIRROR_AZURE_REALM=f"localhost:{closed}").endswith("cannot connect (Connection refused)")


@pytest.mark.parametrize("name", ["ab", "a--b", "-abc", "abc-", "Registry", "reg_istry", "a" * 64])
def test_container_names_the_settings_refuse_azure_refuses_too(tmp_path, azurite, name):
    answer = azurite.request("PUT", f"/{name}?restype=container")
    assert answer.status == 400 and any(code in answer.data for code in
                                        (b"<Code>InvalidResourceName<", b"<Code>OutOfRangeInput<"))
    with pytest.raises(ConfigError, match="DOCKER_MIRROR_AZURE_CONTAINER"):
        azure_settings(tmp_path, azurite, DOCKER_MIRROR_AZURE_CONTAINER=name)

