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
    """One line per exposure of this configuration; none for a loopback bind."""
    if not reachable_from_network(loaded.bind_address):
        return []
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
