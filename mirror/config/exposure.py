"""Who can reach the mirrors, said out loud (pure).

A mirror bound to loopback serves this host alone. Bound to a LAN address
or 0.0.0.0 it serves anyone who can route to it: with no htpasswd anyone
may pull through it (and spend the upstream account's rate limit), and
with no TLS the credentials and images cross the network in clear text.
Both are allowed (a closed lab network may want exactly that), but `check`
and `docker-mirror` say so every time, naming the symbols to change.
"""

from __future__ import annotations

import ipaddress

from .settings import Settings


def reachable_from_network(bind: str) -> bool:
    return not ipaddress.ip_address(bind).is_loopback


def warnings(loaded: Settings) -> list[str]:
    """One line per exposure of this configuration."""
    return _local_warnings(loaded) + (_network_warnings(loaded) if reachable_from_network(loaded.bind_address)
                                      else [])


def _local_warnings(loaded: Settings) -> list[str]:
    """Exposures to this host's other users, whatever the bind."""
    if loaded.replicas.enabled and not loaded.registry_built:
        # Distribution publishes its redis section in expvar; engine patch 0005 redacts the password.
        return [f"WARNING: the replicas (DOCKER_MIRROR_REPLICAS={loaded.replicas.count}) run "
                f"{loaded.registry_image}, not the engine built here (DOCKER_MIRROR_REGISTRY_BUILT): any "
                "local user can read their Redis password at /debug/vars on their loopback debug ports"]
    return []


def _network_warnings(loaded: Settings) -> list[str]:
    """Exposures to anyone who can route to a mirror bound beyond loopback."""
    where = "every address of this host" if ipaddress.ip_address(loaded.bind_address).is_unspecified \
        else loaded.bind_address
    found = []
    if loaded.htpasswd_path is None:
        found.append(f"WARNING: the mirrors listen on {where} (DOCKER_MIRROR_BIND_ADDRESS={loaded.bind_address}) "
                     "with no authentication: anyone who can reach this host may pull through them "
                     "(set DOCKER_MIRROR_HTPASSWD)")
    if loaded.tls_certificate is None:
        found.append(f"WARNING: the mirrors listen on {where} (DOCKER_MIRROR_BIND_ADDRESS={loaded.bind_address}) "
                     "without TLS: images and credentials cross the network in clear text "
                     "(set DOCKER_MIRROR_TLS)")
    return found
