"""Do two mirrors' settings make the same mirror? (pure: two Settings in, words out)

Two checkouts on one host with the same container prefix name the same
containers. They may share them only when they would run the same mirror:
every setting equal but the .config's own path. Otherwise `make
docker-mirror` refuses and names what differs, so the user can choose.
Values are shown as the user set them, except secrets (fields kept out of a
repr) and the user:password@ part of URLs.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit, urlunsplit

from .settings import Settings

# Settings fields that tell two checkouts apart without making another mirror.
NOT_COMPARED = frozenset({"config_path"})

# The Kconfig symbol of a Settings field, where one symbol sets it: what menuconfig shows.
SYMBOLS = {
    "enabled": "ENABLE_DOCKER_MIRROR", "install": "INSTALL_DOCKER_MIRROR", "use": "USE_DOCKER_MIRROR",
    "path": "DOCKER_MIRROR_PATH", "port": "DOCKER_MIRROR_PORT", "bind_address": "DOCKER_MIRROR_BIND_ADDRESS",
    "pull_through": "DOCKER_MIRROR_PULL_THROUGH_CACHE", "registry_image": "DOCKER_MIRROR_REGISTRY_IMAGE",
    "container_prefix": "DOCKER_MIRROR_CONTAINER_PREFIX", "htpasswd_path": "DOCKER_MIRROR_HTPASSWD_PATH",
    "refresh": "DOCKER_MIRROR_REFRESH", "keeper": "DOCKER_MIRROR_KEEPER",
    "recheck_interval": "DOCKER_MIRROR_RECHECK_INTERVAL", "nfs_export": "DOCKER_MIRROR_NFS_EXPORT",
    "nfs_clients": "DOCKER_MIRROR_NFS_CLIENTS", "client_address": "DOCKER_MIRROR_CLIENT_ADDRESS",
}


def _shown(value) -> str:
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        value = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    if isinstance(value, tuple):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if dataclasses.is_dataclass(value):   # its fields may hold secrets: by its name alone
        return type(value).__name__
    return repr(value)


def _keyed(theirs, ours) -> tuple[dict, dict] | None:
    """Two tuples of dataclasses with a `key` (the upstreams; one may be empty), by key; else None."""
    if not (isinstance(theirs, tuple) and isinstance(ours, tuple)) or not (theirs or ours):
        return None
    if not all(dataclasses.is_dataclass(v) and hasattr(v, "key") for v in theirs + ours):
        return None
    return {v.key: v for v in theirs}, {v.key: v for v in ours}


def _diff(name: str, theirs, ours, secret: bool) -> list[str]:
    if theirs == ours:
        return []
    if secret:
        return [f"{name} (a secret: not shown)"]
    if dataclasses.is_dataclass(theirs) and type(theirs) is type(ours):
        found = []
        for f in dataclasses.fields(theirs):
            found += _diff(f"{name}.{f.name}", getattr(theirs, f.name), getattr(ours, f.name), not f.repr)
        return found or [name]
    keyed = _keyed(theirs, ours)
    if keyed is not None:
        a, b = keyed
        found = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                found.append(f"{name}: {key} {'only here' if key not in a else 'only there'}")
            else:
                found += _diff(f"{name}[{key}]", a[key], b[key], False)
        return found
    return [f"{name}: {_shown(theirs)} there, {_shown(ours)} here"]


def differences(theirs: Settings, ours: Settings) -> list[str]:
    """What differs between the owner's settings (`theirs`) and these (`ours`), one line
    each, named by Kconfig symbol where one symbol sets the value; [] when the same mirror."""
    found = []
    for f in dataclasses.fields(Settings):
        if f.name in NOT_COMPARED:
            continue
        found += _diff(SYMBOLS.get(f.name, f.name), getattr(theirs, f.name), getattr(ours, f.name), not f.repr)
    return found
