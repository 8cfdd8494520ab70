"""The s3 storage backend: settings checked value by value, and its registry config."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from mirror import render
from mirror.config import secrets, settings
from mirror.config.dotconfig import parse
from mirror.errors import ConfigError, DotConfigSyntaxError
from mirror.model import modes as L
from support.configs import rejected_symbol, write_config

KEY = "s3-SECRET-key-value"
S3 = {"DOCKER_MIRROR_STORAGE_FILESYSTEM": False, "DOCKER_MIRROR_STORAGE_S3": True,
      "DOCKER_MIRROR_S3_ENDPOINT": "http://127.0.0.1:8333",
      "DOCKER_MIRROR_S3_BUCKET": "mirror-cache",
      "DOCKER_MIRROR_S3_ACCESS_KEY_ID": "AKIDEXAMPLE",
      "DOCKER_MIRROR_S3_SECRET_KEY": KEY}


def load(tmp_path, **overrides):
    return settings.load(write_config(tmp_path / ".config", **{**S3, **overrides}))


def rejected(tmp_path, symbol, value) -> ConfigError:
    return rejected_symbol(load, tmp_path, symbol, value)


def test_defaults_and_derived_fields(tmp_path):
    s = load(tmp_path)
    assert s.storage.backend == "s3"
    assert (s.storage.s3_endpoint, s.storage.s3_region, s.storage.s3_bucket) == \
        ("http://127.0.0.1:8333", "us-east-1", "mirror-cache")
    assert s.storage.s3_path_style is True and s.storage.s3_secure is False
    assert s.storage.s3_root == "/docker-mirror"
    assert KEY not in repr(s)


def test_https_endpoint_is_secure_and_options_are_read(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_S3_ENDPOINT="https://s3.eu-central-1.example.com/",
             DOCKER_MIRROR_S3_REGION="eu-central-1", DOCKER_MIRROR_S3_PATH_STYLE=False,
             DOCKER_MIRROR_S3_ROOT_DIRECTORY="/cache/registry")
    assert s.storage.s3_secure is True and s.storage.s3_path_style is False
    assert s.storage.s3_endpoint == "https://s3.eu-central-1.example.com"
    assert (s.storage.s3_region, s.storage.s3_root) == ("eu-central-1", "/cache/registry")


@pytest.mark.parametrize("symbol,value,allowed", [
    ("DOCKER_MIRROR_S3_ENDPOINT", "", "is required with the s3 storage backend"),
    ("DOCKER_MIRROR_S3_ENDPOINT", "ftp://127.0.0.1:8333", "http:// or https:// URL"),
    ("DOCKER_MIRROR_S3_ENDPOINT", "http://127.0.0.1:99999", "valid port"),
    ("DOCKER_MIRROR_S3_ENDPOINT", "http://127.0.0.1:8333/bucket", "without user, password or path"),
    ("DOCKER_MIRROR_S3_REGION", "", "region name"),
    ("DOCKER_MIRROR_S3_REGION", "US East", "region name"),
    ("DOCKER_MIRROR_S3_BUCKET", "", "bucket name"),
    ("DOCKER_MIRROR_S3_BUCKET", "My_Bucket", "bucket name"),
    ("DOCKER_MIRROR_S3_BUCKET", "ab", "bucket name"),
    ("DOCKER_MIRROR_S3_BUCKET", "a" * 64, "bucket name"),
    ("DOCKER_MIRROR_S3_BUCKET", "a..b", "bucket name"),
    ("DOCKER_MIRROR_S3_ACCESS_KEY_ID", "", "is required with the s3 storage backend"),
    ("DOCKER_MIRROR_S3_ACCESS_KEY_ID", "AK ID", "without spaces"),
    ("DOCKER_MIRROR_S3_SECRET_KEY", "", "is required with the s3 storage backend"),
    ("DOCKER_MIRROR_S3_ROOT_DIRECTORY", "", "absolute key prefix"),
    ("DOCKER_MIRROR_S3_ROOT_DIRECTORY", "relative/dir", "absolute key prefix"),
    ("DOCKER_MIRROR_S3_ROOT_DIRECTORY", "/a b", "absolute key prefix"),
    ("DOCKER_MIRROR_S3_ROOT_DIRECTORY", "/trailing/", "absolute key prefix"),
])
def test_bad_values_are_refused_with_symbol_line_and_rule(tmp_path, symbol, value, allowed):
    err = rejected(tmp_path, symbol, value)
    assert allowed in str(err)
    if value:
        assert repr(value) in str(err) or value in str(err)


def test_a_bad_secret_key_is_named_but_never_shown(tmp_path):
    err = rejected(tmp_path, "DOCKER_MIRROR_S3_SECRET_KEY", "has space" + KEY)
    assert KEY not in str(err) and "<hidden>" in str(err)


def test_the_secret_key_makes_the_config_a_secret_file(tmp_path):
    path = write_config(tmp_path / ".config", **S3)
    config = parse(path.read_text(), str(path))
    assert settings.is_secret("DOCKER_MIRROR_S3_SECRET_KEY")
    assert secrets.holds_secret(config)


def test_registry_config_s3_section(tmp_path):
    s = load(tmp_path)
    upstream = s.upstreams[0]
    text = render.registry_config(s, upstream, major=2, mode=L.PULL_THROUGH, http_secret="x" * 32)
    doc = yaml.safe_load(text)
    assert doc["storage"]["s3"] == {
        "region": "us-east-1", "regionendpoint": "http://127.0.0.1:8333",
        "bucket": "mirror-cache", "accesskey": "AKIDEXAMPLE", "secretkey": KEY,
        "secure": False, "forcepathstyle": True, "v4auth": True,
        "rootdirectory": f"/docker-mirror/{upstream.key}"}
    assert "filesystem" not in doc["storage"] and "azure" not in doc["storage"]
    assert doc["storage"]["delete"] == {"enabled": False}


def test_each_upstream_has_its_own_prefix_in_the_bucket(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_GHCR=True)
    roots = {yaml.safe_load(render.registry_config(s, u, major=2, mode=L.OFFLINE,
                                                   http_secret="x" * 32))["storage"]["s3"]["rootdirectory"]
             for u in s.upstreams}
    assert len(roots) == len(s.upstreams) >= 2


def test_a_malformed_secret_key_line_is_echoed_hidden():
    with pytest.raises(DotConfigSyntaxError) as caught:
        parse(f'CONFIG_DOCKER_MIRROR_S3_SECRET_KEY="{KEY}\n')
    assert KEY not in str(caught.value) and "<hidden>" in str(caught.value)


def test_hostile_strings_in_s3_settings_round_trip(tmp_path):
    # The loader refuses such values; the renderer must not depend on that.
    hostile = "a\"b'c: #{{ x }}\n- d\\\\e\ttab"
    s = load(tmp_path)
    storage = dataclasses.replace(s.storage, s3_region=hostile + "r", s3_bucket=hostile + "b",
                                  s3_access_key=hostile + "a", s3_secret_key=hostile + "s",
                                  s3_endpoint=hostile + "e", s3_root=hostile)
    s = dataclasses.replace(s, storage=storage)
    upstream = s.upstreams[0]
    doc = yaml.safe_load(render.registry_config(s, upstream, major=2, mode=L.OFFLINE, http_secret="x" * 32))
    got = doc["storage"]["s3"]
    assert (got["region"], got["bucket"], got["accesskey"], got["secretkey"], got["regionendpoint"]) == \
        (hostile + "r", hostile + "b", hostile + "a", hostile + "s", hostile + "e")
    assert got["rootdirectory"] == f"{hostile}/{upstream.key}"
