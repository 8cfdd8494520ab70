"""Whether DOCKER_MIRROR_CLIENT_ADDRESS is one this host answers on (`make check` asks).

The client address is what other hosts dial and what the generated
certificate names. One that no interface of this host holds, or a name that
does not resolve, is usually a typo or a stale value: clients would dial
nowhere, with a certificate made for it. It can also be right (an address
NAT or a load balancer forwards here, a name only the clients' DNS knows),
so this only warns.

An address is held when a socket can bind to it: the kernel's own answer
(with net.ipv4.ip_nonlocal_bind=1 any address binds, and none is reported).
"""

from __future__ import annotations

import ipaddress
import socket
import threading

RESOLVE_TIMEOUT = 5.0   # seconds: a check must not hang on an unreachable DNS server


def holds(address: str) -> bool:
    """True when an interface of this host has `address` (an IP literal)."""
    ip = ipaddress.ip_address(address.strip("[]"))
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((str(ip), 0))
        except OSError:
            return False
    return True


def resolve(name: str, timeout: float = RESOLVE_TIMEOUT) -> list[str] | None:
    """The addresses `name` resolves to here, or None when it does not (in `timeout`)."""
    found: list = []

    def lookup():
        try:
            found.append(sorted({info[4][0] for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)}))
        except (OSError, UnicodeError):
            found.append(None)

    # getaddrinfo has no timeout of its own: asked in a thread that is left behind if slow.
    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    return found[0] if found else None


def client_address_warnings(value: str) -> list[str]:
    """One WARNING line when DOCKER_MIRROR_CLIENT_ADDRESS is not an address of this host."""
    if not value:
        return []
    symbol = f"DOCKER_MIRROR_CLIENT_ADDRESS={value}"
    try:
        ipaddress.ip_address(value.strip("[]"))
        literal = True
    except ValueError:
        literal = False
    if literal:
        if holds(value):
            return []
        return [f"WARNING: no interface of this host holds the client address ({symbol}): other hosts "
                f"would dial an address that is not this one (fine only if NAT or a load balancer "
                f"forwards it here; else set the address of this host they reach)"]
    addresses = resolve(value)
    if not addresses:
        return [f"WARNING: the client address does not resolve here ({symbol}): clients could not "
                f"dial it unless their DNS knows it (check the name, or set an IP address)"]
    if any(holds(address) for address in addresses):
        return []
    return [f"WARNING: the client address resolves to {', '.join(addresses)}, which no interface of "
            f"this host holds ({symbol}): clients would dial another host (check the name and its DNS)"]
