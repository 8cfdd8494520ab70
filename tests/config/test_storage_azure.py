"""The azure storage backend: settings checked value by value, and its registry config
(a blob container per upstream, the realm, shared-key credentials for 3.x)."""

from __future__ import annotations

import base64

import pytest
import yaml

from mirror import render
from mirror.config import settings, storage_azure
from mirror.errors import ConfigError
from mirror.model import modes as L
from support.configs import rejected_symbol, write_config

KEY = base64.b64encode(b"azure-SECRET-account-key-bytes").decode()
AZURE = {"DOCKER_MIRROR_STORAGE_FILESYSTEM": False, "DOCKER_MIRROR_STORAGE_AZURE": True,
         "DOCKER_MIRROR_AZURE_ACCOUNT_NAME": "mirroracct",
         "DOCKER_MIRROR_AZURE_ACCOUNT_KEY": KEY}


def load(tmp_path, **overrides):
    return settings.load(write_config(tmp_path / ".config", **{**AZURE, **overrides}))


def rejected(tmp_path, symbol, value) -> ConfigError:
    return rejected_symbol(load, tmp_path, symbol, value)


def azure_section(s, upstream, major=2):
    text = render.registry_config(s, upstream, major=major, mode=L.PULL_THROUGH,
                                  http_secret="x" * 32)
    return yaml.safe_load(text)["storage"]


def test_defaults(tmp_path):
    s = load(tmp_path)
    assert (s.storage.backend, s.storage.azure_account_name, s.storage.azure_container,
            s.storage.azure_realm) == ("azure", "mirroracct", "dockerregistry", "core.windows.net")
    assert s.storage.azure_account_key == KEY and KEY not in repr(s)


def test_the_longest_upstream_key_is_the_one_the_name_check_assumes():
    assert storage_azure.LONGEST_UPSTREAM_KEY == max(len(u[0]) for u in settings.UPSTREAMS)


@pytest.mark.parametrize("symbol,value,allowed", [
    ("DOCKER_MIRROR_AZURE_ACCOUNT_NAME", "", "is required with the azure storage backend"),
    ("DOCKER_MIRROR_AZURE_ACCOUNT_NAME", "ab", "3 to 24 lower-case letters and digits"),
    ("DOCKER_MIRROR_AZURE_ACCOUNT_NAME", "Mirror-Acct", "3 to 24 lower-case letters and digits"),
    ("DOCKER_MIRROR_AZURE_ACCOUNT_NAME", "a" * 25, "3 to 24 lower-case letters and digits"),
    ("DOCKER_MIRROR_AZURE_CONTAINER", "", "is required with the azure storage backend"),
    ("DOCKER_MIRROR_AZURE_CONTAINER", "ab", "3 to 53 lower-case letters"),
    ("DOCKER_MIRROR_AZURE_CONTAINER", "Registry", "3 to 53 lower-case letters"),
    ("DOCKER_MIRROR_AZURE_CONTAINER", "a--b", "single dashes"),
    ("DOCKER_MIRROR_AZURE_CONTAINER", "-abc", "single dashes"),
    ("DOCKER_MIRROR_AZURE_CONTAINER", "abc-", "single dashes"),
    ("DOCKER_MIRROR_AZURE_CONTAINER", "a" * 54, "dockerregistry-dockerhub"),
    ("DOCKER_MIRROR_AZURE_REALM", "", "lower-case DNS suffix"),
    ("DOCKER_MIRROR_AZURE_REALM", "https://core.windows.net", "lower-case DNS suffix"),
    ("DOCKER_MIRROR_AZURE_REALM", "core.windows.net/", "lower-case DNS suffix"),
    ("DOCKER_MIRROR_AZURE_REALM", "Core.Windows.Net", "lower-case DNS suffix"),
    ("DOCKER_MIRROR_AZURE_REALM", "localhost:0", "lower-case DNS suffix"),
    ("DOCKER_MIRROR_AZURE_REALM", "localhost:70000", "lower-case DNS suffix"),
])
def test_bad_values_are_refused_with_symbol_line_and_rule(tmp_path, symbol, value, allowed):
    err = rejected(tmp_path, symbol, value)
    assert allowed in str(err)
    if value:
        assert value in str(err)


def test_the_longest_container_prefix_is_accepted(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_AZURE_CONTAINER="a" * 53)
    assert len(s.storage.azure_container_for("dockerhub")) == 63


@pytest.mark.parametrize("key", ["", "not base64!", "abc"])
def test_a_bad_account_key_is_named_but_never_shown(tmp_path, key):
    err = rejected(tmp_path, "DOCKER_MIRROR_AZURE_ACCOUNT_KEY", key)
    assert ("required" if not key else "base64") in str(err)
    if key:
        assert key not in str(err) and "<hidden>" in str(err)


@pytest.mark.parametrize("realm", ["core.chinacloudapi.cn", "localhost:10000",
                                   "blob-emulator.example.internal:8443"])
def test_other_realms_and_an_emulator_port_are_accepted(tmp_path, realm):
    s = load(tmp_path, DOCKER_MIRROR_AZURE_REALM=realm)
    assert azure_section(s, s.upstreams[0])["azure"]["realm"] == realm


@pytest.mark.parametrize("major", [2, 3])
def test_registry_config_azure_section(tmp_path, major):
    s = load(tmp_path, DOCKER_MIRROR_AZURE_CONTAINER="cache-1")
    section = azure_section(s, s.upstreams[0], major)
    assert section["azure"] == {"accountname": "mirroracct", "accountkey": KEY,
                                "container": "cache-1-dockerhub", "realm": "core.windows.net",
                                "credentials": {"type": "shared_key"}}
    assert "filesystem" not in section and "s3" not in section
    assert section["delete"] == {"enabled": False}


def test_each_upstream_has_its_own_container(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_QUAY=True, DOCKER_MIRROR_K8S=True,
             DOCKER_MIRROR_CUSTOM=True, DOCKER_MIRROR_CUSTOM_REGISTRY="r.example.com",
             DOCKER_MIRROR_CUSTOM_REMOTE_URL="https://r.example.com")
    containers = {u.key: azure_section(s, u)["azure"]["container"] for u in s.upstreams}
    assert containers == {key: f"dockerregistry-{key}"
                          for key in ("dockerhub", "ghcr", "quay", "k8s", "custom")}
