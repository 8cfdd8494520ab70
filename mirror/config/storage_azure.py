"""The azure storage backend's settings, read and checked.

distribution 2.8's azure driver has no `rootdirectory` (3.x added one), so
the upstreams cannot share one blob container under prefixes as they share
an s3 bucket: each upstream gets a container of its own, named
"<DOCKER_MIRROR_AZURE_CONTAINER>-<upstream key>", which the driver creates
when it is missing. The names follow Azure's rules, checked here, so that a
bad one is a ConfigError naming the symbol rather than a registry that
panics at start.
"""

from __future__ import annotations

import base64
import binascii
import re

from ..model.settings import container_for
from .reader import Reader

# Azure: storage account names are 3 to 24 lower-case letters and digits.
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
# Azure: container names are 3 to 63 characters, lower-case letters, digits
# and single dashes between them.
_CONTAINER = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_CONTAINER_MAX = 63
# The longest upstream key (settings.UPSTREAMS: "dockerhub"), which every
# container name must still fit after "-"; tests check it against the table.
LONGEST_UPSTREAM_KEY = 9
# A DNS name (the driver prepends "<account>.blob."), and a port for
# emulators and private endpoints that listen elsewhere than 443.
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_REALM = re.compile(rf"^{_LABEL}(\.{_LABEL})*(:(?P<port>[0-9]{{1,5}}))?$")


def azure_fields(read: Reader) -> dict:
    """Keyword arguments of Storage for the azure backend; any bad value is a ConfigError."""
    def required(name: str) -> str:
        symbol = f"DOCKER_MIRROR_AZURE_{name}"
        value = read.str(symbol)
        if not value:
            read.fail(symbol, "", "is required with the azure storage backend")
        return value

    account = required("ACCOUNT_NAME")
    if not _ACCOUNT.match(account):
        read.fail("DOCKER_MIRROR_AZURE_ACCOUNT_NAME", account,
                  "must be a storage account name: 3 to 24 lower-case letters and digits")
    key = required("ACCOUNT_KEY")
    try:
        decoded = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded:
        read.fail("DOCKER_MIRROR_AZURE_ACCOUNT_KEY", key,
                  "must be the storage account's access key, base64 as Azure shows it")
    container = required("CONTAINER")
    longest = len(container_for(container, "x" * LONGEST_UPSTREAM_KEY))
    if not _CONTAINER.match(container) or len(container) < 3 or longest > _CONTAINER_MAX:
        read.fail("DOCKER_MIRROR_AZURE_CONTAINER", container,
                  f"must be 3 to {_CONTAINER_MAX - LONGEST_UPSTREAM_KEY - 1} lower-case letters, "
                  "digits and single dashes, starting and ending with a letter or digit "
                  "(each upstream's container is this name, a dash and the upstream, "
                  "e.g. dockerregistry-dockerhub)")
    realm = read.str("DOCKER_MIRROR_AZURE_REALM")
    match = _REALM.match(realm)
    if not match or len(realm.split(":")[0]) > 253 or not 0 < int(match["port"] or 443) < 65536:
        read.fail("DOCKER_MIRROR_AZURE_REALM", realm,
                  "must be a lower-case DNS suffix, optionally with :port, e.g. core.windows.net "
                  "(the blob endpoint is https://<account>.blob.<realm>)")
    return {"azure_account_name": account, "azure_account_key": key,
            "azure_container": container, "azure_realm": realm}
