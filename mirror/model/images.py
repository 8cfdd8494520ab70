"""Image references, parsed and normalised by the Docker reference grammar.

The grammar is distribution's (reference/regexp.go) and the normalisation is
Docker's (reference/normalize.go): `nginx` is `docker.io/library/nginx:latest`,
a first component holding `.` or `:`, equal to `localhost`, or holding an
uppercase letter, is a registry.

Where Docker's releases differ, this follows the current distribution/reference
(Docker 25 and later): the 255-character limit applies to the repository path
(`library/` included), not to the registry host, so rewriting a valid reference
onto a longer mirror host always gives a valid reference. Digests are checked
as go-digest checks them: only the registered algorithms, in lowercase hex of
their exact length.

`rewrite()` maps a reference onto the mirror port of its registry; it is pure,
and mirror.services.rewrite adds the settings and the liveness probe around it.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import InvalidMirror, InvalidReference

DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io"}
MAX_NAME_LENGTH = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*")
# re.ASCII: Go's \w is [0-9A-Za-z_]; Python's would also take letters such as 'é'.
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
# go-digest registers these (hex digits per algorithm); Docker refuses any other.
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
# A bare image ID; Docker refuses it as a name so that it is never taken for one.
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")


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
    if not isinstance(reference, str):
        raise InvalidReference(repr(reference), f"must be a string, not {type(reference).__name__}")
    if not reference:
        raise InvalidReference(reference, "empty")
    if reference != reference.strip():
        raise InvalidReference(reference, "leading or trailing white space")
    if _IDENTIFIER.fullmatch(reference):
        raise InvalidReference(reference, "a 64-hex-digit image ID is not a repository name")
    rest, at, digest = reference.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise InvalidReference(reference, "digest must be ALGORITHM:HEX, e.g. sha256:<64 hex digits>")
    if at:
        algorithm, _, hex_digits = digest.partition(":")
        length = _DIGEST_HEX_LENGTH.get(algorithm)
        if length is None:
            raise InvalidReference(reference, f"unsupported digest algorithm {algorithm!r} "
                                   "(sha256, sha384 or sha512)")
        if not re.fullmatch(rf"[0-9a-f]{{{length}}}", hex_digits):
            raise InvalidReference(reference, f"a {algorithm} digest is {length} lowercase hex digits")
    name, tag = rest, None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        name, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise InvalidReference(
                reference, "tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -")
    if not name:
        raise InvalidReference(reference, "no repository name")
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
    if len(path) > MAX_NAME_LENGTH:
        raise InvalidReference(reference, f"repository path is {len(path)} characters "
                               f"(library/ included on Docker Hub); at most {MAX_NAME_LENGTH}")
    if tag is None and not digest:
        tag = "latest"
    return ImageRef(registry, path, tag, digest or None)


def normalize(reference: str) -> str:
    return str(parse(reference))


def _port(registry: str, value) -> int:
    # Ports come from YAML or templating too, where "5000" may arrive as a string.
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidMirror(f"mirror port {value!r} for {registry}: must be an integer from 1 to 65535")
    return value


def _mirror_host(host: str) -> str:
    if not isinstance(host, str):
        raise InvalidMirror(f"mirror address {host!r}: must be a host name or IP address")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in bare:
        host = f"[{bare}]"  # an IPv6 address: brackets keep its colons apart from the port
    if not _DOMAIN.fullmatch(host) or host.rpartition("]")[2].count(":"):
        raise InvalidMirror(f"mirror address {host!r}: must be a host name or IP address, "
                            "without a port (the port comes from the upstream's mirror)")
    return host


def rewrite(reference: str, mirror_host: str, ports: Mapping[str, int]) -> str:
    """`reference` pulled through the mirror of its registry, or `reference` itself.

    `ports` maps registry hosts (docker.io, ghcr.io, ...; as parse() names
    them) to mirror ports on `mirror_host`. The result keeps the whole
    repository path, tag and digest, so two different images never meet on
    one mirror reference; that also needs distinct ports, which is checked.
    A registry missing from `ports` gives back the original string untouched
    (not its normalised form): the caller's reference is what it meant.
    Raises InvalidReference for an invalid reference, whatever the map.
    """
    ref = parse(reference)
    checked = {registry: _port(registry, port) for registry, port in ports.items()}
    if len(set(checked.values())) != len(checked):
        raise InvalidMirror(f"mirror ports {dict(checked)!r}: each registry needs its own port, "
                            "or two registries' images would meet on one mirror reference")
    port = checked.get(ref.registry)
    if port is None:
        return reference
    tag = f":{ref.tag}" if ref.tag else ""
    digest = f"@{ref.digest}" if ref.digest else ""
    return f"{_mirror_host(mirror_host)}:{port}/{ref.repository}{tag}{digest}"


def _truthy(value) -> bool:
    # Templating may hand over "false" or "no" as text; bool("false") would be True.
    if isinstance(value, str):
        return value.strip().lower() in ("1", "y", "yes", "true", "on")
    return bool(value)


def mirror_reference(reference: str, mirror_address: str, ports: Mapping[str, int],
                     enabled=True) -> str:
    """The filter behind `docker_mirror_image`, for Jinja and Ansible alike.

    With `enabled` false the reference comes back unchanged, but is still
    validated: a typo in a workflow's image fails the same way whether or
    not the mirror is in use.
    """
    if not _truthy(enabled):
        parse(reference)
        return reference
    return rewrite(reference, mirror_address, ports)
