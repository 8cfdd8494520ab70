"""Free ports, and who holds a taken one (read from /proc)."""

import os
import socket

import pytest

from mirror.host import ports
from mirror.model.endpoint import DEBUG_HOST


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_a_listening_port_is_taken_and_named_with_its_process(listener):
    assert not ports.port_is_free("127.0.0.1", listener)
    name = open(f"/proc/{os.getpid()}/comm").read().strip()
    assert ports.holder(listener) == f"{name} (pid {os.getpid()})"


def test_a_closed_port_is_free_and_held_by_nobody(listener):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert ports.port_is_free("127.0.0.1", port)
    assert ports.holder(port) == "an unknown process"


def test_ipv6_ports_are_checked_too():
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        sock.listen()
        assert not ports.port_is_free("::1", sock.getsockname()[1])


def test_free_loopback_endpoint_has_both_ports_free():
    endpoint = ports.free_loopback_endpoint()
    assert (endpoint.bind, endpoint.tls) == ("127.0.0.1", False)
    assert ports.port_is_free("127.0.0.1", endpoint.port)
    assert ports.port_is_free(DEBUG_HOST, endpoint.debug_port)
