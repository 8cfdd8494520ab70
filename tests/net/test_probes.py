"""The one probe of 'does it answer', against real servers on loopback."""

import http.server
import socket
import threading
import time

import pytest

from mirror.model.endpoint import Endpoint
from mirror.net import probes
from support.upstream import free_port


@pytest.fixture
def plain_http():
    """An HTTP server that is not a registry (no Docker-Distribution-Api-Version)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_registry_answers(upstream):
    endpoint = Endpoint.of("127.0.0.1", upstream.port, tls=False)
    assert probes.registry_answers("127.0.0.1", upstream.port)
    assert probes.answers(endpoint)
    assert probes.answers(Endpoint.of("0.0.0.0", upstream.port, tls=False))  # reached on loopback
    assert probes.wait_until_answering(endpoint, 5)


def test_other_http_and_nothing_do_not(plain_http):
    assert not probes.registry_answers("127.0.0.1", plain_http)
    assert not probes.answers(Endpoint.of("127.0.0.1", free_port(), tls=False))


def test_a_silent_server_is_given_up_on_within_the_bound():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts, never answers
        start = time.monotonic()
        assert not probes.registry_answers("127.0.0.1", silent.getsockname()[1])
        assert time.monotonic() - start < probes.PROBE_TIMEOUT + 0.2


def test_waiting_stops_when_told_there_is_no_point():
    calls = []

    def gave_up():
        calls.append(1)
        return len(calls) >= 2

    start = time.monotonic()
    assert not probes.wait_until_answering(Endpoint.of("127.0.0.1", free_port(), tls=False), 30, gave_up)
    assert time.monotonic() - start < 5 and len(calls) == 2


@pytest.mark.parametrize("address, expected", [("127.0.0.1:5000", ("127.0.0.1", 5000)), ("host", ("host", 5000)),
                                               ("[::1]:6000", ("::1", 6000)), ("[::1]", ("::1", 5000))])
def test_split_address(address, expected):
    assert probes.split_address(address) == expected
