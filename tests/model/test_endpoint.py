"""Endpoint: every address of one mirror, derived from bind address, port and TLS."""

import pytest

from mirror.model.endpoint import Endpoint, debug_port


@pytest.mark.parametrize("port, expected", [(1, 10001), (5000, 15000), (55535, 65535),
                                            (55536, 45536), (65535, 55535)])
def test_debug_port(port, expected):
    assert debug_port(port) == expected
    assert Endpoint.of("127.0.0.1", port, tls=False).debug_port == expected


@pytest.mark.parametrize("bind, listen, probe, client", [
    ("127.0.0.1", "127.0.0.1:5000", "127.0.0.1", "127.0.0.1"),
    ("0.0.0.0", "0.0.0.0:5000", "127.0.0.1", "127.0.0.1"),
    ("192.168.1.5", "192.168.1.5:5000", "192.168.1.5", "192.168.1.5"),
    ("::", "[::]:5000", "::1", "[::1]"),
    ("fd00::5", "[fd00::5]:5000", "fd00::5", "[fd00::5]"),
])
def test_addresses(bind, listen, probe, client):
    e = Endpoint.of(bind, 5000, tls=False)
    assert (e.listen, e.probe_host, e.client_host) == (listen, probe, client)
    assert e.client_address == f"{client}:5000"
    assert e.url == f"http://{client}:5000"
    assert e.debug_listen == "127.0.0.1:15000"  # loopback, whatever the bind address


def test_tls_and_another_port():
    e = Endpoint.of("::", 5000, tls=True)
    assert e.url == "https://[::1]:5000"
    moved = e.with_port(6001)
    assert (moved.port, moved.debug_port, moved.tls, moved.url) == (6001, 16001, True, "https://[::1]:6001")
