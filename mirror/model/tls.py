"""The generated TLS certificates, as values (pure: no I/O, no crypto).

With DOCKER_MIRROR_TLS_GENERATE the product keeps a CA of its own and a
server certificate signed by it (mirror.host.tls writes them). Decided here:
which names the server certificate must carry, and when it is issued again.
The CA is never decided on here: once it exists, clients trust it, so it is
never replaced (a new one would break every client that has the old one).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

CA_DAYS = 3650           # the CA lives long: replacing it means touching every client
SERVER_DAYS = 397        # what browsers and most TLS stacks accept for a leaf
RENEW_BEFORE = timedelta(days=30)  # re-issued when less is left (the daily refresh sees it)

# Every client on this host dials one of these, whatever the bind address.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, order=True)
class Name:
    """One subjectAltName: kind "dns" or "ip", the value as the certificate holds it."""

    kind: str
    value: str

    @classmethod
    def of(cls, text: str) -> "Name":
        try:
            return cls("ip", str(ipaddress.ip_address(text.strip("[]"))))
        except ValueError:
            return cls("dns", text.lower().rstrip("."))

    def __str__(self) -> str:
        return f"{'IP' if self.kind == 'ip' else 'DNS'}:{self.value}"


def server_names(client_address: str, hostname: str, bind_address: str) -> tuple[Name, ...]:
    """The names the server certificate must carry, sorted.

    What clients dial: DOCKER_MIRROR_CLIENT_ADDRESS, this host's name (what a
    0.0.0.0 bind hands the fleet), a specific bind address, and loopback
    (the product's own calls and this host's clients). A wildcard bind is no
    name anyone dials.
    """
    names = {Name.of(n) for n in LOOPBACK_NAMES}
    for text in (client_address, hostname, bind_address):
        if not text:
            continue
        name = Name.of(text)
        if name.kind == "ip" and ipaddress.ip_address(name.value).is_unspecified:
            continue
        names.add(name)
    return tuple(sorted(names))


@dataclass(frozen=True)
class Issued:
    """What an existing server certificate says about itself."""

    names: tuple[Name, ...]
    not_after: datetime           # timezone-aware
    signed_by_ca: bool            # by the CA kept beside it (a replaced CA means re-issue)
    key_matches: bool = True      # server.key is this certificate's (a run stopped between the writes)


def reissue_reason(issued: Issued | None, needed: tuple[Name, ...], now: datetime) -> str | None:
    """Why the server certificate must be issued (again), or None to keep it."""
    if issued is None:
        return "there is none"
    if not issued.signed_by_ca:
        return "it is not signed by the CA beside it"
    if not issued.key_matches:
        return "the server key beside it is not the key of it"
    have, want = set(issued.names), set(needed)
    if have != want:
        parts = []
        if want - have:
            parts.append("adds " + ", ".join(map(str, sorted(want - have))))
        if have - want:
            parts.append("drops " + ", ".join(map(str, sorted(have - want))))
        return "the names clients dial changed: " + "; ".join(parts)
    left = issued.not_after - now
    if left < RENEW_BEFORE:
        return f"it expires on {issued.not_after:%Y-%m-%d}" if left.total_seconds() > 0 \
            else f"it expired on {issued.not_after:%Y-%m-%d}"
    return None


WARN_BEFORE = RENEW_BEFORE   # status warns (and exits 1) when less is left


def expiry_warning(not_after: datetime, now: datetime, generated: bool, keeper: bool) -> str | None:
    """What status says of a certificate near or past its end, naming who fixes it; None
    while more than WARN_BEFORE is left. A generated one is re-issued by the product
    (setup, and the keeper at each check); a given one only by whoever gave it."""
    left = not_after - now
    if left >= WARN_BEFORE:
        return None
    if left.total_seconds() <= 0:
        ago = (now - not_after).days
        when = (f"expired on {not_after:%Y-%m-%d} ({f'{ago} days ago' if ago else 'today'}): "
                f"clients refuse the mirror")
    else:
        when = f"expires on {not_after:%Y-%m-%d}, in {left.days} days"
    if not generated:
        fix = ("a given certificate (DOCKER_MIRROR_TLS_CERTIFICATE): replace it, "
               "then run 'make docker-mirror'")
    elif keeper:
        fix = "generated: re-issued by the keeper at its next check, or now by 'make docker-mirror'"
    else:
        fix = "generated: re-issued by the next 'make docker-mirror' (the keeper is off)"
    return f"the certificate {when}; {fix}"


DIRECTORY = "tls"   # under DOCKER_MIRROR_PATH


def generated_files(mirror_path: str) -> tuple[str, str, str]:
    """(server certificate, server key, CA certificate) of a generated TLS setup."""
    base = mirror_path.rstrip("/") + "/" + DIRECTORY
    return f"{base}/server.crt", f"{base}/server.key", f"{base}/ca.crt"
