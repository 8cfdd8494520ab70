"""Whose the containers of a mirror's names are: the .config their label names."""

from __future__ import annotations

from .client import docker_errors, find_container
from .containers import LABEL_CONFIG


def owners(client, names) -> dict[str, str]:
    """{name: the .config its LABEL_CONFIG names} for those of `names` that exist with that
    label (a container made before the label existed has no owner to tell: it counts as ours)."""
    found = {}
    with docker_errors("read the owners of the mirror's containers"):
        for name in names:
            container = find_container(client, name)
            owner = (container.labels or {}).get(LABEL_CONFIG) if container is not None else None
            if owner:
                found[name] = owner
    return found
