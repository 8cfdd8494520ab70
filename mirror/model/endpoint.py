"""Where one mirror listens and where it is reached: every address, derived once.

settings builds one Endpoint per upstream from DOCKER_MIRROR_BIND_ADDRESS,
the upstream's port and DOCKER_MIRROR_TLS; the registry config, the
container labels, the port checks, the probes, the client configuration
and the status all read it from there.
"""

from __future__ import annotations

from dataclasses import dataclass

# Each mirror's debug/metrics listener sits this far from its port, on loopback.
DEBUG_PORT_OFFSET = 10000
DEBUG_HOST = "127.0.0.1"


def debug_port(port: int) -> int:
    """The loopback debug/metrics port of the mirror on `port`."""
    return port + DEBUG_PORT_OFFSET if port + DEBUG_PORT_OFFSET <= 65535 else port - DEBUG_PORT_OFFSET


def probe_host(bind_address: str) -> str:
    """Where this host reaches a server bound to `bind_address` (bare, as sockets take it)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind_address, bind_address)


def bracketed(host: str) -> str:
    """An IPv6 address in brackets, so that its colons stay apart from a port."""
    return f"[{host}]" if ":" in host else host


def host_port(host: str, port: int) -> str:
    return f"{bracketed(host)}:{port}"


@dataclass(frozen=True)
class Endpoint:
    bind: str           # the address the registry listens on
    port: int
    tls: bool
    debug_port: int     # its debug/metrics listener, on DEBUG_HOST

    @classmethod
    def of(cls, bind: str, port: int, tls: bool) -> "Endpoint":
        return cls(bind, port, tls, debug_port(port))

    def with_port(self, port: int) -> "Endpoint":
        return Endpoint.of(self.bind, port, self.tls)

    @property
    def listen(self) -> str:
        """bind:port, as the registry's http.addr (IPv6 bracketed)."""
        return host_port(self.bind, self.port)

    @property
    def debug_listen(self) -> str:
        return host_port(DEBUG_HOST, self.debug_port)

    @property
    def probe_host(self) -> str:
        """The host this machine connects to (a wildcard bind is reached on loopback)."""
        return probe_host(self.bind)

    @property
    def client_host(self) -> str:
        """The host as it goes into an image reference or a URL (IPv6 bracketed)."""
        return bracketed(self.probe_host)

    @property
    def client_address(self) -> str:
        """HOST:PORT as this host's clients name the mirror (insecure-registries)."""
        return f"{self.client_host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.client_address}"
