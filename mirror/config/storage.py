"""Where the registries keep the cache: the storage backend's settings (model.settings.Storage), read and checked.

filesystem (a directory per upstream), azure (a blob container per upstream) or s3 (a
bucket of any S3-compatible store; distribution's storage.s3 driver).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ..model.settings import Storage
from .reader import Reader
from .storage_azure import azure_fields
from .storage_ca import read_ca_bundle


def from_config(read: Reader, mirror_path: str) -> Storage:
    """The storage backend chosen in .config and its checked settings."""
    for backend, fields in (("azure", azure_fields), ("s3", _s3)):
        if read.bool(f"DOCKER_MIRROR_STORAGE_{backend.upper()}"):
            # what every object store shares: the CA it is trusted by, and redirects to it
            return Storage(backend, "", **fields(read), ca_bundle=read_ca_bundle(read),
                           redirect=read.bool("DOCKER_MIRROR_STORAGE_REDIRECT"))
    path = read.path("DOCKER_MIRROR_STORAGE_PATH", required=False)
    return Storage("filesystem", path or f"{mirror_path}/registry")


# AWS region names: lower-case words joined by dashes (us-east-1, eu-central-2).
_REGION = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# AWS bucket naming rules, the subset every S3-compatible store accepts.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ROOT = re.compile(r"^(/[A-Za-z0-9._-]+)+$")


def _s3(read: Reader) -> dict:
    """Keyword arguments of Storage for the s3 backend; any bad value is a ConfigError."""
    if not read.str("DOCKER_MIRROR_S3_ENDPOINT"):
        read.fail("DOCKER_MIRROR_S3_ENDPOINT", "", "is required with the s3 storage backend "
                  "(an http:// or https:// URL, e.g. https://s3.us-east-1.amazonaws.com)")
    endpoint = read.url("DOCKER_MIRROR_S3_ENDPOINT")
    parts = urlsplit(endpoint)
    if parts.username is not None or parts.path not in ("", "/"):
        read.fail("DOCKER_MIRROR_S3_ENDPOINT", endpoint,
                  "must be scheme://host[:port] without user, password or path "
                  "(the keys have their own options)")
    region = read.str("DOCKER_MIRROR_S3_REGION")
    if not _REGION.match(region):
        read.fail("DOCKER_MIRROR_S3_REGION", region,
                  "must be a region name of lower-case letters, digits and dashes, e.g. us-east-1")
    bucket = read.str("DOCKER_MIRROR_S3_BUCKET")
    if not _BUCKET.match(bucket) or ".." in bucket:
        read.fail("DOCKER_MIRROR_S3_BUCKET", bucket, "must be a bucket name of 3 to 63 lower-case "
                  "letters, digits, dots and dashes, starting and ending with a letter or digit")
    keys = {}
    for symbol in ("DOCKER_MIRROR_S3_ACCESS_KEY_ID", "DOCKER_MIRROR_S3_SECRET_KEY"):
        keys[symbol] = read.str(symbol)
        if not keys[symbol]:
            read.fail(symbol, "", "is required with the s3 storage backend")
        if not keys[symbol].isprintable() or any(c.isspace() for c in keys[symbol]):
            read.fail(symbol, keys[symbol], "must be printable characters without spaces")
    root = read.str("DOCKER_MIRROR_S3_ROOT_DIRECTORY")
    if not _ROOT.match(root):
        read.fail("DOCKER_MIRROR_S3_ROOT_DIRECTORY", root, "must be an absolute key prefix of "
                  "letters, digits, dots, dashes and underscores, e.g. /docker-mirror")
    return {
        "s3_endpoint": endpoint,
        "s3_region": region,
        "s3_bucket": bucket,
        "s3_access_key": keys["DOCKER_MIRROR_S3_ACCESS_KEY_ID"],
        "s3_secret_key": keys["DOCKER_MIRROR_S3_SECRET_KEY"],
        "s3_path_style": read.bool("DOCKER_MIRROR_S3_PATH_STYLE"),
        "s3_secure": parts.scheme == "https",
        "s3_root": root,
    }
