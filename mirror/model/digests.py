"""Content digests as they cross a boundary (pure).

Every digest this package takes from outside (a registry's manifest, an
index's children, an archive's docker-mirror.json) is checked here before
it names a file, a URL path or a tar member: exactly `sha256:` and 64 lower
hex digits. Anything else (`sha256:../../x`, another algorithm, a number)
is refused, so a malicious upstream or archive cannot steer a path.

What a registry's own storage tree holds is read with `is_digest`: any of
go-digest's registered algorithms (distribution may have written sha384 or
sha512 links), still never a string that could steer a path.
"""

from __future__ import annotations

import hashlib
import re

from ..errors import InvalidDigest

SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
# go-digest's registered algorithms and their hex lengths
ANY = re.compile(r"(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})")
SHOWN = 80   # characters of a bad value echoed back: enough to recognise, never a flood


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and SHA256.fullmatch(value) is not None


def is_digest(value: object) -> bool:
    """A digest of any algorithm distribution stores (a storage tree's links)."""
    return isinstance(value, str) and ANY.fullmatch(value) is not None


def require(value: object, what: str) -> str:
    """`value` when it is a sha256 digest; InvalidDigest naming `what` otherwise."""
    if not is_sha256(value):
        shown = repr(value)
        shown = shown if len(shown) <= SHOWN else shown[:SHOWN] + "..."
        raise InvalidDigest(f"{what}: {shown} is not a digest (allowed: sha256: and 64 hex digits)")
    return value


def of(body: bytes) -> str:
    """The digest of `body`, as registries compute it."""
    return "sha256:" + hashlib.sha256(body).hexdigest()
