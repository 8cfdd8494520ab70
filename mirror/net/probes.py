"""Is anything answering? The one probe of a registry, an engine, a host.

Shared by Kconfig auto-detection, the CLI checks, status, image rewriting
and every wait for a registry to come up. Each probe is bounded in time:
Kconfig runs them while parsing, and `make olddefconfig` must never hang on
an address that drops packets. They speak raw sockets rather than
`requests` because importing requests alone costs more than the whole probe
budget.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from ..model.endpoint import Endpoint, host_port

PROBE_TIMEOUT = 0.3  # seconds, for a whole probe: connect + request + answer

DOCKER_SOCKET = "/var/run/docker.sock"


def _connect(family, address, timeout: float, tls: bool, host: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
        if tls:
            import ssl  # only TLS mirrors pay for it

            # Liveness only: the certificate may be self-signed or name another host.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return sock


def _http_get_status(host: str, port: int, path: str, timeout: float,
                     unix_socket: str | None = None, tls: bool = False) -> tuple[int, dict] | None:
    """Status and headers of `GET path`, or None when nothing answered in time."""
    deadline = time.monotonic() + timeout
    family = socket.AF_UNIX if unix_socket else socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with _connect(family, unix_socket or (host, port), timeout, tls, host) as sock:
            request = (f"GET {path} HTTP/1.0\r\nHost: {host_port(host, port)}\r\n"
                       "User-Agent: docker-mirror-probe\r\n\r\n")
            sock.sendall(request.encode())
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16384:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                sock.settimeout(remaining)
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
    except OSError:
        return None
    lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def split_address(address: str, default_port: int = 5000) -> tuple[str, int]:
    """'host', 'host:port' or '[v6]:port' -> (host, port). For the Kconfig probe's
    DOCKER_MIRROR_PROBE_ADDRESS: a registry's own port (the registry image's), not an option's."""
    address = address.strip()
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if address.count(":") == 1:
        host, port = address.split(":")
        return host, int(port)
    return address, default_port


def registry_answers(host: str, port: int, timeout: float = PROBE_TIMEOUT, tls: bool = False) -> bool:
    """True when a Docker registry (API v2) answers GET /v2/ on host:port.

    A registry answers 200, or 401 when it wants credentials; either way it
    sends the API version header, which tells it apart from any other HTTP
    service that happens to hold the port.
    """
    answer = _http_get_status(host, port, "/v2/", timeout, tls=tls)
    if answer is None:
        return False
    status, headers = answer
    return status in (200, 401) and headers.get(
        "docker-distribution-api-version", "").startswith("registry/2")


def answers(endpoint: Endpoint, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when the mirror at `endpoint` answers the registry API, as this host reaches it."""
    return registry_answers(endpoint.probe_host, endpoint.port, timeout, tls=endpoint.tls)


def wait_until_answering(endpoint: Endpoint, timeout: float,
                         gave_up: Callable[[], bool] | None = None) -> bool:
    """Poll until the mirror at `endpoint` answers; False on timeout, or once
    `gave_up()` says there is no point waiting (its container died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(endpoint):
            return True
        if gave_up is not None and gave_up():
            return False
        time.sleep(0.1)
    return False


def docker_engine_answers(sock_path: str = DOCKER_SOCKET, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when a Docker engine answers /_ping on its unix socket."""
    answer = _http_get_status("docker", 80, "/_ping", timeout, unix_socket=sock_path)
    return answer is not None and answer[0] == 200
