"""Image references, parsed and normalised by the Docker reference grammar.

The grammar is distribution's (reference/regexp.go) and the normalisation is
Docker's (reference/normalize.go): `nginx` is `docker.io/library/nginx:latest`,
a first component holding `.` or `:`, or equal to `localhost`, is a registry.
"""

import re
from dataclasses import dataclass

from .errors import MirrorError

DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io"}
MAX_NAME_LENGTH = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")


class InvalidReference(MirrorError):
    exit_code = 2

    def __init__(self, reference: str, why: str):
        self.reference = reference
        super().__init__(f"invalid image reference {reference!r}: {why}")


@dataclass(frozen=True)
class ImageRef:
    registry: str    # canonical host[:port], docker.io for Docker Hub
    repository: str  # path inside the registry, library/ added for Hub
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"


def _split_registry(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"
                  or first.lower() != first):
        registry = DOCKER_HUB if first in _HUB_ALIASES else first
        return registry, rest
    return DOCKER_HUB, name


def parse(reference: str) -> ImageRef:
    """Parse and normalise `reference`; raises InvalidReference."""
    if not isinstance(reference, str) or not reference:
        raise InvalidReference(str(reference), "empty")
    if reference != reference.strip():
        raise InvalidReference(reference, "leading or trailing white space")
    rest, at, digest = reference.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise InvalidReference(reference, "digest must be ALGORITHM:HEX, e.g. sha256:<64 hex digits>")
    if digest.startswith("sha256:") and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise InvalidReference(reference, "a sha256 digest is 64 lowercase hex digits")
    name, tag = rest, None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        name, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise InvalidReference(
                reference, "tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -")
    if not name:
        raise InvalidReference(reference, "no repository name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidReference(reference, f"repository name longer than {MAX_NAME_LENGTH} characters")
    registry, path = _split_registry(name)
    if registry != DOCKER_HUB and not _DOMAIN.fullmatch(registry):
        raise InvalidReference(reference, f"bad registry host {registry!r}")
    if path.lower() != path:
        raise InvalidReference(reference, "repository name must be lowercase")
    for component in path.split("/"):
        if not component:
            raise InvalidReference(reference, "empty path component (double or trailing '/')")
        if not _PATH_COMPONENT.fullmatch(component):
            raise InvalidReference(
                reference, f"path component {component!r} must be lowercase letters and "
                "digits, separated by '.', '_', '__' or '-'")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if tag is None and not digest:
        tag = "latest"
    return ImageRef(registry, path, tag, digest or None)


def normalize(reference: str) -> str:
    return str(parse(reference))
