"""A mirror serving a LAN, on a real network: a veth pair into a network namespace this
test makes (addresses of its own in 198.18.0.0/15), removed at the end.

The mirror binds the host side, behind htpasswd; from the namespace, skopeo pulls an
image with credentials and is refused without; a mirror bound to 127.0.0.1 cannot be
reached from there at all. With generated TLS: the product warms through the LAN address,
and from the namespace skopeo (the CA the clients command wrote to certs.d) and ctr (the
hosts.toml it wrote: `ca =` and the Authorization header) pull over TLS; without
credentials they are refused, without the CA verification fails. From the host, docker
pull goes through dockerd's registry-mirrors with the CA in /etc/docker/certs.d.
"""

import random
import socket
import subprocess
import uuid

import pytest

from mirror.services import clients
from mirror.host import credential
from mirror.host.client_files import ClientPaths
from support.mirrors import mirror_factory
from support.pullthrough import CONTAINERD_SOCKET, ctr_remove_namespace, real_daemon_json
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


def tls_mirror(tmp_path, make_mirror, hub, host_ip, **more):
    users = tmp_path / "htpasswd"
    users.write_text(f"alice:{credential._bcrypt('wonderland')}\n")
    listing = tmp_path / "images.txt"
    listing.write_text("kept:1\n")
    return make_mirror(hub.url, "tls", DOCKER_MIRROR_BIND_ADDRESS=host_ip, DOCKER_MIRROR_TLS=True,
                       DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(users),
                       DOCKER_MIRROR_CLIENT_USERNAME="alice", DOCKER_MIRROR_CLIENT_PASSWORD="wonderland",
                       DOCKER_MIRROR_IMAGES_EXTRA_LIST=str(listing), **more)


def test_generated_tls_and_credentials_across_a_veth_link(tmp_path, lan, make_mirror):
    ns, host_ip, _ = lan
    with UpstreamRegistry(tmp_path / "hub") as hub:
        digest = push_image(hub.url, "library/kept", "1")
        m = tls_mirror(tmp_path, make_mirror, hub, host_ip)
        assert m.settings.tls_generate

        # the product's own warming, over TLS to the LAN address, with its own user
        warmed = m.run("pull", check=False)
        assert warmed.returncode == 0 and "docker.io/library/kept:1: ok" in warmed.stdout, warmed.stdout + warmed.stderr

        # what this host's clients get, written into a tree of the test's own
        etc = tmp_path / "etc"
        paths = ClientPaths(daemon_json=etc / "docker/daemon.json", docker_pid=tmp_path / "no.pid",
                            containerd_config=etc / "containerd/config.toml", certs_dir=etc / "containerd/certs.d",
                            docker_certs_dir=etc / "docker/certs.d")
        clients.apply(m.settings, paths, reload=False)
        cert_dir = paths.docker_certs_dir / f"{host_ip}:{m.port}"
        assert (cert_dir / "ca.crt").read_bytes() == (m.root / "tls" / "ca.crt").read_bytes()
        image = f"docker://{host_ip}:{m.port}/library/kept:1"

        pulled = in_ns(ns, "skopeo", "inspect", "--cert-dir", str(cert_dir), "--creds", "alice:wonderland",
                       "--format", "{{.Digest}}", image)
        assert pulled.returncode == 0 and pulled.stdout.strip() == digest, pulled.stderr
        refused = in_ns(ns, "skopeo", "inspect", "--cert-dir", str(cert_dir), "--no-creds", image)
        assert refused.returncode != 0 and "unauthorized" in refused.stderr.lower(), refused.stderr
        (tmp_path / "no-ca").mkdir()
        unverified = in_ns(ns, "skopeo", "inspect", "--cert-dir", str(tmp_path / "no-ca"),
                           "--creds", "alice:wonderland", image)
        assert unverified.returncode != 0 and "certificate signed by unknown authority" in unverified.stderr, \
            unverified.stderr

        # containerd's resolver in the namespace, reading the hosts.toml the product wrote
        namespace = f"dmlan-{uuid.uuid4().hex[:8]}"
        ctr = ("ctr", "--address", CONTAINERD_SOCKET, "--namespace", namespace)
        try:
            by_ctr = in_ns(ns, *ctr, "image", "pull", "--hosts-dir", str(paths.certs_dir), "docker.io/library/kept:1")
            assert by_ctr.returncode == 0, by_ctr.stdout + by_ctr.stderr
            listed = in_ns(ns, *ctr, "image", "ls").stdout
            assert digest in listed
        finally:
            ctr_remove_namespace(namespace)
        clients.undo(m.settings, reload=False)
        assert not etc.exists() or not any(p.is_file() for p in etc.rglob("*"))


def test_docker_pull_through_registry_mirrors_over_generated_tls(tmp_path, lan, make_mirror, docker_client):
    """dockerd reads the CA from /etc/docker/certs.d/HOST:PORT for a registry mirror; behind
    htpasswd it sends the mirror the credentials its client gave for Docker Hub (there is no
    other way to give it any: see README, Security)."""
    _, host_ip, _ = lan
    with UpstreamRegistry(tmp_path / "hub") as hub:
        tag = f"lan-{uuid.uuid4().hex[:8]}"
        digest = push_image(hub.url, "library/kept", tag)
        m = tls_mirror(tmp_path, make_mirror, hub, host_ip)
        etc = tmp_path / "containerd"
        paths = ClientPaths(containerd_config=etc / "config.toml", certs_dir=etc / "certs.d")
        ca = ClientPaths().docker_certs_dir / f"{host_ip}:{m.port}" / "ca.crt"
        ref = f"kept:{tag}"
        with real_daemon_json():
            try:
                clients.apply(m.settings, paths)
                assert ca.read_bytes() == (m.root / "tls" / "ca.crt").read_bytes()
                assert f"https://{host_ip}:{m.port}/" in docker_client.info()["RegistryConfig"]["Mirrors"]
                docker_client.images.pull("kept", tag=tag, auth_config={"username": "alice", "password": "wonderland"})
                found = {d.split("@", 1)[1] for d in docker_client.images.get(ref).attrs["RepoDigests"]}
                assert found == {digest}
            finally:
                clients.undo(m.settings)
                try:
                    docker_client.images.remove(ref, force=True)
                except Exception:
                    pass
        assert not ca.exists() and not ca.parent.exists()
