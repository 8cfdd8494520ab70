"""A mirror serving a LAN, on a real network: a veth pair into a network namespace this
test makes (addresses of its own in 198.18.0.0/15), removed at the end.

The mirror binds the host side, behind htpasswd; from the namespace, skopeo pulls an
image with credentials and is refused without; a mirror bound to 127.0.0.1 cannot be
reached from there at all. (TLS across the link is not built yet: see README, Security.)
"""

import random
import socket
import subprocess
import uuid

import pytest

from mirror.host import credential
from support.mirrors import mirror_factory
from support.upstream import UpstreamRegistry, push_image


def sh(*argv, check=True, timeout=60):
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture
def lan():
    """(namespace, host address, namespace address) on a fresh veth pair."""
    tag = uuid.uuid4().hex[:6]
    ns, host_if, ns_if = f"dmtest-{tag}", f"dmh{tag}", f"dmn{tag}"
    octet = random.randint(1, 250)
    host_ip, ns_ip = f"198.18.{octet}.1", f"198.18.{octet}.2"
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", ns)
        sh("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, host_ip, ns_ip
    finally:
        sh("ip", "link", "del", host_if, check=False)
        sh("ip", "netns", "del", ns, check=False)


@pytest.fixture
def make_mirror(tmp_path, docker_client, registry_image):
    with mirror_factory(docker_client, lambda name: tmp_path / name) as make:
        yield make


def in_ns(ns, *argv, timeout=60):
    return sh("ip", "netns", "exec", ns, *argv, check=False, timeout=timeout)


def test_a_lan_mirror_behind_htpasswd_across_a_veth_link(tmp_path, lan, make_mirror):
    ns, host_ip, _ = lan
    users = tmp_path / "htpasswd"
    users.write_text(f"alice:{credential._bcrypt('wonderland')}\n")
    with UpstreamRegistry(tmp_path / "hub") as hub:
        push_image(hub.url, "library/kept", "1")
        lan_mirror = make_mirror(hub.url, "lan", DOCKER_MIRROR_BIND_ADDRESS=host_ip,
                                 DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(users))
        local = make_mirror(hub.url, "local")
        image = f"docker://{host_ip}:{lan_mirror.port}/library/kept:1"

        pulled = in_ns(ns, "skopeo", "copy", "--src-tls-verify=false", "--src-creds", "alice:wonderland",
                       image, f"dir:{tmp_path / 'pulled'}")
        assert pulled.returncode == 0, pulled.stderr
        assert (tmp_path / "pulled" / "manifest.json").is_file()

        refused = in_ns(ns, "skopeo", "inspect", "--tls-verify=false", "--no-creds", image)
        assert refused.returncode != 0 and "unauthorized" in refused.stderr.lower()
        wrong = in_ns(ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "alice:nope",
                      f"http://{host_ip}:{lan_mirror.port}/v2/")
        assert wrong.stdout == "401"

        # The loopback mirror: nothing listens for the namespace on the host's link address.
        unreachable = in_ns(ns, "curl", "-s", "-o", "/dev/null", "--max-time", "3", "-w", "%{http_code}",
                            f"http://{host_ip}:{local.port}/v2/")
        assert unreachable.stdout == "000" and unreachable.returncode == 7  # connection refused
        with socket.create_connection(("127.0.0.1", local.port), timeout=3):
            pass  # while this host itself reaches it
