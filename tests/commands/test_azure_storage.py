"""The azure backend against a real Azure Blob service (Azurite, tests/support/azurite.py).

distribution cannot be run on it here: Debian's registry has no azure driver
(tests/engine/test_storage_drivers.py shows its panic and setup's refusal).
What can be checked against the real service is everything the product
hands the driver: the endpoint the rendered config makes the driver dial
(`https://<account>.blob.<realm>`, TLS verified for that name), the account
and key it signs with, the per-upstream container names (Azure's naming
rules, as the settings check them), and that one upstream's container never
shows another's blobs.
"""

from __future__ import annotations

import base64
import re

import pytest
import yaml

from mirror import render
from mirror.config import settings
from mirror.errors import ConfigError
from mirror.model import modes as L
from support.azurite import Azurite
from support.configs import write_config

ACCOUNT = "dmtestacct"
KEY = base64.b64encode(b"dmtest-azurite-account-key-32-by").decode()
OTHER_UPSTREAMS = dict(DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_QUAY=True, DOCKER_MIRROR_K8S=True,
                       DOCKER_MIRROR_CUSTOM=True, DOCKER_MIRROR_CUSTOM_REGISTRY="r.example.com",
                       DOCKER_MIRROR_CUSTOM_REMOTE_URL="https://r.example.com")


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with Azurite(tmp_path_factory.mktemp("azurite"), ACCOUNT, KEY) as service:
        yield service


def azure_settings(tmp_path, azurite, **overrides):
    values = dict(DOCKER_MIRROR_STORAGE_FILESYSTEM=False, DOCKER_MIRROR_STORAGE_AZURE=True,
                  DOCKER_MIRROR_AZURE_ACCOUNT_NAME=ACCOUNT, DOCKER_MIRROR_AZURE_ACCOUNT_KEY=KEY,
                  DOCKER_MIRROR_AZURE_REALM=azurite.realm, **OTHER_UPSTREAMS)
    return settings.load(write_config(tmp_path / ".config", **{**values, **overrides}))


def driver_params(s, upstream) -> dict:
    text = render.registry_config(s, upstream, major=2, mode=L.PULL_THROUGH, http_secret="x" * 32)
    return yaml.safe_load(text)["storage"]["azure"]


def listed(azurite, container: str) -> list[str]:
    answer = azurite.request("GET", f"/{container}?restype=container&comp=list")
    assert answer.status == 200, answer.data
    return re.findall(r"<Name>([^<]+)</Name>", answer.data.decode())


def test_each_upstreams_container_is_made_and_kept_apart(tmp_path, azurite):
    # The longest prefix the settings allow: Azure's 63-character limit holds for "-dockerhub".
    prefix = "c" * 40 + "-" + "d" * 12
    s = azure_settings(tmp_path, azurite, DOCKER_MIRROR_AZURE_CONTAINER=prefix)
    assert len(s.upstreams) == 5
    containers = {}
    for upstream in s.upstreams:
        params = driver_params(s, upstream)
        # distribution 2.8 (Azure SDK's getBaseURL): https://<account>.blob.<realm>
        assert f"{params['accountname']}.blob.{params['realm']}" == f"{azurite.host}:{azurite.port}"
        assert params["accountkey"] == KEY
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
        assert listed(azurite, container) == [f"docker/registry/v2/repositories/{key}/_layers/link"]
        answer = azurite.request("GET", f"/{container}/docker/registry/v2/repositories/{key}/_layers/link")
        assert (answer.status, answer.data) == (200, key.encode())


def test_the_service_refuses_another_key(azurite):
    wrong = base64.b64encode(b"not-the-account-key-of-dmtestacct").decode()
    answer = azurite.request("GET", "/?comp=list", key=wrong)
    assert answer.status == 403 and b"AuthorizationFailure" in answer.data


@pytest.mark.parametrize("name", ["ab", "a--b", "-abc", "abc-", "Registry", "reg_istry", "a" * 64])
def test_container_names_the_settings_refuse_azure_refuses_too(tmp_path, azurite, name):
    answer = azurite.request("PUT", f"/{name}?restype=container")
    code = re.search(rb"<Code>(\w+)</Code>", answer.data)
    assert answer.status == 400 and code and code[1] in (b"InvalidResourceName", b"OutOfRangeInput")
    with pytest.raises(ConfigError, match="DOCKER_MIRROR_AZURE_CONTAINER"):
        azure_settings(tmp_path, azurite, DOCKER_MIRROR_AZURE_CONTAINER=name)
