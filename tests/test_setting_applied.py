"""A setting changed is a setting applied: change options, run `make docker-mirror`'s path,
and the running parts (mirror containers, the status page, the keeper) behave per the new
values, on the real engine, one mirror reused across the cases. Each case first makes sure
of what it relies on (World.ensure, World.ensure_users), so that any order, or a case alone,
works; in file order that changes nothing and costs no setup.

Which options each case proves is the ENGINE table of tests/config/test_setting_followed.py,
which also shows, for every option of the Kconfig tree, that changing it changes what its
running parts are made from. After every case, each running part is checked to have started
after every file it read last changed (a registry reads its config, htpasswd and certificates
once, at start), and the page and the keeper to run with the inputs they would read now.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from datetime import datetime
from pathlib import Path

import bcrypt
import pytest
import requests
from cryptography import x509

from mirror.config import dotconfig
from mirror.engine.containers import LABEL_CONFIG, LABEL_MODE
from mirror.host import locks
from mirror.model.modes import PLAIN
from mirror.host.layout import Layout
from mirror.services import inputs, install
from mirror.services.observe_serve import serve_lock
from support.mirrors import Mirror
from support.replicas import pull
from support.upstream import UpstreamRegistry, free_port, free_ports, push_image

from config.test_setting_followed import ENGINE

# the certificates are checked by what they are (served_certificate), not by a CA
pytestmark = [pytest.mark.engine, pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]

PAGE_PATHS = ("/", "/metrics", "/status.json")
UPSTREAM_KEYS = ("GHCR", "QUAY", "K8S", "CUSTOM")
SINGLE_UPSTREAM = {f"DOCKER_MIRROR_{key}": False for key in UPSTREAM_KEYS}
ON = dict(ENABLE_DOCKER_MIRROR=True, INSTALL_DOCKER_MIRROR=True)


def users_file(path: Path, password: str) -> str:
    path.write_text(f"alice:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}\n")
    return str(path)


def code(url, auth=None) -> int | None:
    """The HTTP status of GET `url`, or None when nothing answers there."""
    try:
        return requests.get(url, auth=auth, timeout=5, verify=False).status_code
    except requests.RequestException:
        return None


def wait_for(what, predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


class World:
    def __init__(self, tmp: Path, client, hub, hub2):
        self.tmp, self.client, self.hub, self.hub2 = tmp, client, hub, hub2
        self.page_port = free_port()
        self.m = Mirror(tmp / "m", hub.url, DOCKER_MIRROR_OBSERVE=True, DOCKER_MIRROR_OBSERVE_PORT=self.page_port)
        self.users = tmp / "htpasswd"
        self.password = None   # alice's, as `users` holds it now
        self.scheme = "http"

    @property
    def s(self):
        return self.m.settings

    @property
    def auth(self):
        return ("alice", self.password) if self.m.overrides.get("DOCKER_MIRROR_HTPASSWD") else None

    def write_users(self, password: str) -> str:
        self.password = password
        return users_file(self.users, password)

    def configure(self, **values):
        self.m.configure(**values)
        self.scheme = "https" if self.s.tls_certificate else "http"

    def ensure(self, **values):
        """What a case relies on (and the mirror switched on): set up when .config changes."""
        found = dotconfig.load(self.m.config).entries   # a read, not kconfiglib's 0.2 s write
        if all((found[k].value if k in found else False) == v for k, v in {**ON, **values}.items()):
            return
        before, stamp = self.m.config.read_bytes(), self.m.config.stat()
        self.configure(**ON, **values)
        if self.m.config.read_bytes() == before:
            # the same text: as if untouched (no running part is older than what it read)
            os.utime(self.m.config, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        else:
            self.setup()

    def ensure_users(self, password: str, **values):
        """ensure(**values), with htpasswd on and alice's password `password`."""
        if self.auth == ("alice", password):
            return self.ensure(**values)
        self.configure(**ON, DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=self.write_users(password),
                       **values)
        self.setup()

    def setup(self) -> list[str]:
        """`make docker-mirror`'s own path (services.install.docker_mirror), in this process."""
        # A new process reads the code afresh (others may edit this tree while the test runs).
        inputs.code_digest.cache_clear()
        self.lines: list[str] = []
        install.docker_mirror(self.s, self.client, log=self.lines.append)
        self.check_applied()
        return self.lines

    def mirror_url(self, upstream=None) -> str:
        endpoint = (upstream or self.s.upstreams[0]).endpoint
        return f"{self.scheme}://{endpoint.listen}/v2/"

    def page_url(self, path="/") -> str:
        host = self.s.observe.address
        return f"{self.scheme}://{host}:{self.s.observe.port}{path}"

    def page_pid(self):
        return locks.holder(serve_lock(self.s))

    def page_log(self) -> str:
        try:
            return "\n".join((serve_lock(self.s).parent / "serve.log").read_text().splitlines()[-15:])
        except OSError:
            return "(no log)"

    def keeper_pid(self):
        return locks.holder(Layout.of(self.s).keeper_lock)

    def containers(self):
        return [c for c in self.client.containers.list(all=True, ignore_removed=True)
                if (c.labels or {}).get(LABEL_CONFIG) == os.path.abspath(self.m.config)]

    def check_applied(self):
        """Every running part started after every file it read last changed, and runs with
        what it would read now."""
        for container in self.containers():
            container.reload()
            assert container.status == "running", container.name
            started = datetime.fromisoformat(container.attrs["State"]["StartedAt"][:26].rstrip("Z")).timestamp()
            for mount in container.attrs["Mounts"]:
                source = Path(mount["Source"])
                if source.is_file():
                    assert source.stat().st_mtime <= started + 0.001, \
                        f"{container.name} started before {source} changed: it serves the old one"
        # (a page just started records its inputs within a second; the code it runs is its own:
        # others may edit this tree meanwhile, so only the settings and files are compared)
        def current(lock):
            return inputs.recorded(lock) == inputs.digest(self.s, code=inputs.recorded_code(lock))

        on = self.s.enabled and self.s.install
        if on and self.s.observe.enabled:
            wait_for(f"the page to run with the inputs of now: {getattr(self, 'lines', None)}\n{self.page_log()}",
                     lambda: self.page_pid() and current(serve_lock(self.s)), 10)
        if on and self.s.keeper:
            wait_for("the keeper to run with the inputs of now",
                     lambda: self.keeper_pid() and current(Layout.of(self.s).keeper_lock), 10)

    def served_certificate(self, url) -> x509.Certificate:
        host, port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
        return x509.load_pem_x509_certificate(ssl.get_server_certificate((host, int(port))).encode())


@pytest.fixture(scope="module")
def world(tmp_path_factory, docker_client, registry_image):
    tmp = tmp_path_factory.mktemp("applied")
    with UpstreamRegistry(tmp / "hub") as hub, UpstreamRegistry(tmp / "hub2") as hub2:
        w = World(tmp, docker_client, hub, hub2)
        try:
            w.setup()
            wait_for("the open status page", lambda: code(w.page_url("/metrics")) == 200)
            assert code(w.mirror_url()) == 200
            yield w
        finally:
            w.m.remove(docker_client)


def test_htpasswd_on_closes_the_mirror_and_the_running_page(world):
    w = world
    w.ensure(DOCKER_MIRROR_OBSERVE=True, DOCKER_MIRROR_HTPASSWD=False)
    wait_for("the open status page", lambda: code(w.page_url("/metrics")) == 200)
    assert w.page_pid()
    w.configure(DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=w.write_users("pw1"))
    w.setup()
    assert code(w.mirror_url()) == 401
    assert code(w.mirror_url(), ("alice", "pw1")) == 200
    wait_for("the restarted page", lambda: code(w.page_url("/metrics"), ("alice", "pw1")) == 200)
    for path in PAGE_PATHS:
        assert code(w.page_url(path)) == 401, path
        assert code(w.page_url(path), ("alice", "wrong")) == 401, path
        assert code(w.page_url(path), ("alice", "pw1")) == 200, path


def test_a_password_changed_in_the_file_is_applied(world):
    """The issue's finding: alice:pw1 -> pw2 printed "(unchanged)" and pw1 kept working."""
    w = world
    w.ensure_users("pw1", DOCKER_MIRROR_OBSERVE=True)
    w.write_users("pw2")                          # .config unchanged: only the file's bytes
    done = w.m.setup().stdout                     # the CLI, as make runs it
    assert "(recreated)" in done and "(unchanged)" not in done, done
    w.lines = done.splitlines()
    w.check_applied()
    assert code(w.mirror_url(), ("alice", "pw1")) == 401
    assert code(w.mirror_url(), ("alice", "pw2")) == 200
    for path in PAGE_PATHS:
        assert code(w.page_url(path), ("alice", "pw1")) == 401, path
        assert code(w.page_url(path), ("alice", "pw2")) == 200, path
    page = w.page_pid()
    again = w.setup()                             # nothing changed since: nothing restarted
    assert not [line for line in again if "created" in line or "restarted" in line], again
    assert w.page_pid() == page


def test_addresses_move_the_mirror_and_the_page(world):
    w = world
    w.ensure(DOCKER_MIRROR_OBSERVE=True, DOCKER_MIRROR_TLS=False, **SINGLE_UPSTREAM)
    old_mirror, old_page = w.mirror_url(), w.page_url("/metrics")
    old_names = {c.name for c in w.containers()}
    port, page_port = free_ports(2)
    w.configure(DOCKER_MIRROR_PORT=port, DOCKER_MIRROR_BIND_ADDRESS="127.0.0.3",
                DOCKER_MIRROR_CONTAINER_PREFIX=w.m.prefix + "b",
                DOCKER_MIRROR_OBSERVE_ADDRESS="127.0.0.3", DOCKER_MIRROR_OBSERVE_PORT=page_port)
    w.setup()
    assert w.mirror_url() == f"http://127.0.0.3:{port}/v2/"
    assert code(w.mirror_url(), w.auth) == 200
    assert code(old_mirror, w.auth) is None
    assert not old_names & {c.name for c in w.containers()}
    assert {c.name for c in w.containers()} == {f"{w.m.prefix}b-dockerhub"}
    wait_for("the page at its new address", lambda: code(w.page_url("/metrics"), w.auth) == 200)
    assert code(old_page, w.auth) is None


def certificate_pair(directory: Path, name: str):
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.3,IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def test_a_given_certificate_replaced_in_place_is_served(world):
    w = world
    w.ensure(DOCKER_MIRROR_OBSERVE=True)
    given = w.tmp / "given"
    given.mkdir(exist_ok=True)
    cert, key = certificate_pair(given, "first")
    w.configure(DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_GIVEN=True, DOCKER_MIRROR_TLS_GENERATE=False,
                DOCKER_MIRROR_TLS_CERTIFICATE=str(cert), DOCKER_MIRROR_TLS_KEY=str(key))
    w.setup()
    first = x509.load_pem_x509_certificate(cert.read_bytes())
    assert code(w.mirror_url(), w.auth) == 200
    assert w.served_certificate(w.mirror_url()) == first
    wait_for("the page over TLS", lambda: code(w.page_url("/metrics"), w.auth) == 200)
    assert w.served_certificate(w.page_url()) == first
    # renewed: new bytes in the same files, .config unchanged
    new_cert, new_key = certificate_pair(given, "second")
    cert.write_bytes(new_cert.read_bytes())
    key.write_bytes(new_key.read_bytes())
    w.setup()
    second = x509.load_pem_x509_certificate(cert.read_bytes())
    assert w.served_certificate(w.mirror_url()) == second
    wait_for("the page's new certificate", lambda: code(w.page_url("/metrics"), w.auth) == 200)
    assert w.served_certificate(w.page_url()) == second


def san_addresses(certificate) -> set[str]:
    found = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(a) for a in found.get_values_for_type(x509.IPAddress)}


def test_a_generated_certificate_follows_the_client_address(world):
    w = world
    w.configure(**ON, DOCKER_MIRROR_TLS=True,
                DOCKER_MIRROR_TLS_GIVEN=False, DOCKER_MIRROR_TLS_GENERATE=True, DOCKER_MIRROR_TLS_CERTIFICATE="",
                DOCKER_MIRROR_TLS_KEY="", DOCKER_MIRROR_CLIENT_ADDRESS="127.0.0.5")
    w.setup()
    assert "127.0.0.5" in san_addresses(w.served_certificate(w.mirror_url()))
    w.configure(DOCKER_MIRROR_CLIENT_ADDRESS="127.0.0.6")
    w.setup()
    served = san_addresses(w.served_certificate(w.mirror_url()))
    assert "127.0.0.6" in served and "127.0.0.5" not in served
    assert code(w.mirror_url(), w.auth) == 200


def upload(w) -> int | None:
    try:
        return requests.post(w.mirror_url() + "applied/probe/blobs/uploads/", auth=w.auth, timeout=5,
                             verify=False).status_code
    except requests.RequestException:
        return None


def test_pull_through_off_makes_a_plain_registry(world):
    w = world
    w.ensure(DOCKER_MIRROR_PULL_THROUGH_CACHE=True)
    assert upload(w) == 405                       # a proxy refuses pushes
    w.configure(DOCKER_MIRROR_PULL_THROUGH_CACHE=False)
    w.setup()
    assert upload(w) == 202
    assert {c.labels[LABEL_MODE] for c in w.containers()} == {PLAIN}
    w.configure(DOCKER_MIRROR_PULL_THROUGH_CACHE=True)
    w.setup()
    assert upload(w) == 405


def manifest(w, upstream, repo, tag) -> int | None:
    try:
        return requests.get(f"{w.mirror_url(upstream)}{repo}/manifests/{tag}", auth=w.auth, timeout=10,
                            verify=False, headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
                            ).status_code
    except requests.RequestException:
        return None


def test_upstreams_switched_on_and_repointed(world):
    w = world
    w.ensure(DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=w.hub.url, **SINGLE_UPSTREAM)
    push_image(w.hub2.url, "applied/only-on-hub2", "1")
    assert manifest(w, None, "applied/only-on-hub2", "1") == 404
    ports = free_ports(4)
    on = {f"DOCKER_MIRROR_{key}": True for key in UPSTREAM_KEYS}
    on |= {f"DOCKER_MIRROR_{key}_PORT": port for key, port in zip(UPSTREAM_KEYS, ports)}
    # every upstream pointed at hub2 with credentials, Docker Hub's too
    on |= {f"DOCKER_MIRROR_{key}_REMOTE_URL": w.hub2.url for key in (*UPSTREAM_KEYS, "DOCKERHUB")}
    on |= {f"DOCKER_MIRROR_{key}_USERNAME": "puller" for key in (*UPSTREAM_KEYS, "DOCKERHUB")}
    on |= {f"DOCKER_MIRROR_{key}_PASSWORD": "pull-secret" for key in (*UPSTREAM_KEYS, "DOCKERHUB")}
    w.configure(DOCKER_MIRROR_CUSTOM_REGISTRY="registry.applied.test", **on)
    w.setup()
    assert len(w.containers()) == 5
    assert {u.endpoint.port for u in w.s.upstreams[1:]} == set(ports)
    for upstream in w.s.upstreams:
        assert code(w.mirror_url(upstream), w.auth) == 200, upstream.key
        assert manifest(w, upstream, "applied/only-on-hub2", "1") == 200, upstream.key
        assert "puller" in Layout.of(w.s).config_file(upstream).read_text()
    w.configure(**{f"DOCKER_MIRROR_{key}": False for key in UPSTREAM_KEYS})
    w.setup()
    assert len(w.containers()) == 1


def test_the_keeper_is_restarted_with_new_inputs_and_stopped_when_off(world):
    w = world
    w.configure(**ON, DOCKER_MIRROR_KEEPER=True, DOCKER_MIRROR_RECHECK_INTERVAL=300)
    w.setup()
    first = w.keeper_pid()
    w.configure(DOCKER_MIRROR_RECHECK_INTERVAL=301)
    w.setup()
    assert w.keeper_pid() not in (None, first)
    log = Layout.of(w.s).keeper_log.read_text()
    assert "checks every 301 s" in log
    w.configure(DOCKER_MIRROR_KEEPER=False)
    w.setup()
    assert w.keeper_pid() is None


def test_the_page_follows_its_own_options_and_stops_when_off(world):
    w = world
    w.ensure(DOCKER_MIRROR_OBSERVE=True)
    page = w.page_pid()
    assert page
    textfiles = w.tmp / "textfile"
    textfiles.mkdir(exist_ok=True)
    w.configure(DOCKER_MIRROR_OBSERVE_INTERVAL=2, DOCKER_MIRROR_OBSERVE_TEXTFILE_DIR=str(textfiles))
    w.setup()
    assert w.page_pid() != page
    wait_for("the textfile", lambda: (textfiles / "docker_mirror.prom").is_file())
    w.configure(DOCKER_MIRROR_OBSERVE=False)
    url = w.page_url("/metrics")
    w.setup()
    assert w.page_pid() is None and code(url, w.auth) is None


def test_a_moved_directory_and_storage_are_mounted(world):
    w = world
    # The page of the old directory holds the port until its next sample sees the move; the
    # setup waits for it, and the new directory's page takes the port.
    w.ensure_users(w.password or "pw2", DOCKER_MIRROR_OBSERVE=True, DOCKER_MIRROR_OBSERVE_INTERVAL=5,
                   **SINGLE_UPSTREAM)
    old_page = serve_lock(w.s)
    assert locks.holder(old_page)
    storage = w.tmp / "storage"
    w.configure(DOCKER_MIRROR_PATH=str(w.tmp / "moved"), DOCKER_MIRROR_STORAGE_PATH=str(storage))
    w.setup()
    assert locks.holder(old_page) is None
    wait_for("the moved page to answer", lambda: code(w.page_url("/metrics"), w.auth) == 200)
    assert w.page_pid(), w.page_log()
    (container,) = w.containers()
    sources = {m["Destination"]: m["Source"] for m in container.attrs["Mounts"]}
    assert sources["/var/lib/registry"] == str(storage / "dockerhub")
    assert all(not s.startswith(str(w.m.root)) for s in sources.values()), sources
    assert code(w.mirror_url()) == 401
    assert code(w.mirror_url(), w.auth) == 200


def pulled(w, repo, tag) -> str:
    """A client's pull through the mirror, with the world's auth and TLS, not retried: its digest."""
    auth = w.auth or ("", "")
    return pull(w.mirror_url()[:-len("/v2/")], repo, tag, attempts=1, username=auth[0], password=auth[1],
                verify=False)[0]


def serving_upstream(w):
    """The upstream registry the mirror points at now (a case before may have repointed it)."""
    return w.hub if w.s.upstreams[0].remote_url == w.hub.url else w.hub2


def test_new_limits_are_the_running_mirrors(world):
    """Kconfig's memory and pids limits changed on a running mirror: `make docker-mirror`
    re-creates it with them, and it serves a pull."""
    w = world
    w.ensure(**SINGLE_UPSTREAM)
    (old,) = w.containers()
    limits = w.s.resources
    memory_mb = 384 if limits.registry_memory_mb != 384 else 448
    pids = 333 if limits.pids != 333 else 444
    w.configure(DOCKER_MIRROR_REGISTRY_MEMORY_MB=memory_mb, DOCKER_MIRROR_CONTAINER_PIDS_LIMIT=pids)
    w.setup()
    (new,) = w.containers()
    assert new.id != old.id, w.lines
    host = new.attrs["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["PidsLimit"]) == (memory_mb << 20, memory_mb << 20, pids)
    digest = push_image(serving_upstream(w).url, "applied/limits", "1")
    assert pulled(w, "applied/limits", "1") == digest


def test_another_registry_image_runs_the_mirror_and_back(world, registry_image, debian_registry_image):
    """From the engine built here to a given image (Debian's registry) and back: each
    `make docker-mirror` re-creates the mirror on the image .config names, and it serves."""
    w = world
    w.ensure(DOCKER_MIRROR_REGISTRY_BUILT=True, **SINGLE_UPSTREAM)
    (built,) = w.containers()
    assert built.image.id == registry_image.image_id
    upstream = serving_upstream(w)
    digest = push_image(upstream.url, "applied/image", "1")
    w.configure(DOCKER_MIRROR_REGISTRY_BUILT=False, DOCKER_MIRROR_REGISTRY_IMAGE=debian_registry_image.ref)
    w.setup()
    (given,) = w.containers()
    assert given.image.id == debian_registry_image.image_id != registry_image.image_id
    assert pulled(w, "applied/image", "1") == digest
    w.configure(DOCKER_MIRROR_REGISTRY_BUILT=True)
    w.setup()
    (again,) = w.containers()
    assert again.image.id == registry_image.image_id and again.id != given.id
    assert pulled(w, "applied/image", "1") == digest


def test_switched_off_takes_everything_down(world):
    w = world
    w.configure(**ON, DOCKER_MIRROR_OBSERVE=True, DOCKER_MIRROR_KEEPER=True)
    w.setup()
    w.configure(INSTALL_DOCKER_MIRROR=False)
    w.setup()
    assert w.containers() == [] and w.page_pid() is None and w.keeper_pid() is None
    # Switched off with ENABLE_DOCKER_MIRROR, .config no longer says where the mirror is: the
    # page reads .config again at each sample, as the keeper does, and stops by itself.
    w.configure(INSTALL_DOCKER_MIRROR=True, DOCKER_MIRROR_KEEPER=False, DOCKER_MIRROR_OBSERVE=True,
                DOCKER_MIRROR_OBSERVE_INTERVAL=5)
    w.setup()
    assert len(w.containers()) == 1 and w.page_pid()
    page_lock = serve_lock(w.s)
    w.configure(ENABLE_DOCKER_MIRROR=False)
    install.docker_mirror(w.s, w.client, log=lambda _: None)
    assert w.containers() == []
    wait_for("the page to stop", lambda: locks.holder(page_lock) is None, timeout=15)


def test_every_engine_case_is_a_test_here():
    names = {name for name in globals() if name.startswith("test_")}
    assert set(ENGINE) <= names, set(ENGINE) - names
