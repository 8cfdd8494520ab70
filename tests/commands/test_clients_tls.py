"""docker-mirror-clients with generated TLS and client credentials, on files in a tmp dir:
the CA where dockerd (certs.d/HOST:PORT/ca.crt) and containerd (`ca =` in hosts.toml) read
it, the Authorization header in a 0600 hosts.toml, undo putting back what was there; a
wrong password or a missing CA stops the run before anything is written; the containerd
restart hint names the containerd that really runs (a /proc tree of the test's own)."""

import base64
import tomllib
from pathlib import Path

import pytest

from mirror.services import client_hosts, clients
from mirror.config import settings as settings_mod
from mirror.errors import ClientFileError, ConfigError
from mirror.host import credential, tls
from mirror.host.client_files import ClientPaths
from support.configs import write_config


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def users(tmp_path_factory):
    path = tmp_path_factory.mktemp("users") / "htpasswd"
    path.write_text(f"alice:{credential._bcrypt('wonder land')}\n")
    return path


def configured(tmp_path, users, password="wonder land", **more):
    config = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                          DOCKER_MIRROR_PORT=15100, DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_TLS=True,
                          DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(users),
                          DOCKER_MIRROR_CLIENT_USERNAME="alice", DOCKER_MIRROR_CLIENT_PASSWORD=password, **more)
    return settings_mod.load(config)


@pytest.fixture
def paths(tmp_path):
    etc = tmp_path / "etc"
    (etc / "docker").mkdir(parents=True)
    return ClientPaths(daemon_json=etc / "docker/daemon.json", docker_pid=tmp_path / "docker.pid",
                       containerd_config=etc / "containerd/config.toml", certs_dir=etc / "containerd/certs.d",
                       docker_certs_dir=etc / "docker/certs.d")


def test_the_ca_and_the_credential_go_where_each_client_reads_them_and_come_back_out(tmp_path, users, paths):
    settings = configured(tmp_path, users)
    tls.ensure(settings)
    ca = Path(settings.tls_ca).read_bytes()
    # someone's own CA for the ghcr mirror's address is there already: put back by undo
    theirs = paths.docker_certs_dir / "127.0.0.1:15101" / "ca.crt"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"their CA\n")
    before = tree(tmp_path / "etc")

    report = clients.apply(settings, paths, reload=False)
    for port in (15100, 15101):
        assert (paths.docker_certs_dir / f"127.0.0.1:{port}" / "ca.crt").read_bytes() == ca
    for registry, port in (("docker.io", 15100), ("ghcr.io", 15101)):
        hosts = paths.certs_dir / registry / "hosts.toml"
        doc = tomllib.loads(hosts.read_text())
        host = doc["host"][f"https://127.0.0.1:{port}"]
        assert Path(host["ca"]).read_bytes() == ca and Path(host["ca"]).parent == hosts.parent
        assert base64.b64decode(host["header"]["Authorization"].removeprefix("Basic ")) == b"alice:wonder land"
        assert hosts.stat().st_mode & 0o777 == 0o600
    assert "wonder land" not in "\n".join(report.lines)
    assert any("someone else's file" in line and "127.0.0.1:15101" in line for line in report.lines)

    again = clients.apply(settings, paths, reload=False)
    assert not any("written" in line for line in again.lines)

    clients.undo(settings, reload=False)
    assert tree(tmp_path / "etc") == before


def test_a_wrong_client_password_stops_before_anything_is_written(tmp_path, users, paths):
    settings = configured(tmp_path, users, password="not it")
    tls.ensure(settings)
    before = tree(tmp_path / "etc")
    with pytest.raises(ConfigError) as err:
        clients.apply(settings, paths, reload=False)
    assert err.value.symbol == "CONFIG_DOCKER_MIRROR_CLIENT_PASSWORD" and "'alice'" in str(err.value)
    assert "not it" not in str(err.value)
    assert tree(tmp_path / "etc") == before


def test_no_ca_yet_says_to_set_the_mirror_up_first(tmp_path, users, paths):
    settings = configured(tmp_path, users)
    with pytest.raises(ClientFileError, match="make docker-mirror"):
        clients.apply(settings, paths, reload=False)
    assert not paths.daemon_json.exists() and not paths.certs_dir.exists()


def test_a_hosts_toml_left_readable_is_made_0600_again(tmp_path, users, paths):
    settings = configured(tmp_path, users)
    tls.ensure(settings)
    clients.apply(settings, paths, reload=False)
    hosts = paths.certs_dir / "docker.io" / "hosts.toml"
    hosts.chmod(0o644)
    clients.apply(settings, paths, reload=False)
    assert hosts.stat().st_mode & 0o777 == 0o600


def fake_proc(root: Path, *processes):
    """A /proc of (pid, comm, argv, parent pid) entries."""
    root.mkdir()
    for pid, comm, argv, ppid in processes:
        d = root / str(pid)
        d.mkdir()
        (d / "comm").write_text(comm + "\n")
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        (d / "stat").write_text(f"{pid} ({comm}) S {ppid} 1 1 0\n")
    return root


def test_the_restart_hint_names_the_containerd_that_runs(tmp_path):
    config = Path("/etc/containerd/config.toml")
    bundled = fake_proc(tmp_path / "a", (10, "dockerd", ["dockerd"], 1),
                        (11, "containerd", ["containerd", "--config", "/var/run/docker/containerd/containerd.toml"], 10))
    said = client_hosts.restart_hint(config, bundled)
    assert "Docker's own" in said and "/var/run/docker/containerd/containerd.toml" in said
    assert "does not read /etc/containerd/config.toml" in said

    system = fake_proc(tmp_path / "b", (20, "containerd", ["/usr/bin/containerd"], 1))
    assert client_hosts.restart_hint(config, system).startswith("restart containerd to apply it (pid 20")

    other = fake_proc(tmp_path / "c", (30, "containerd", ["containerd", "-c", "/opt/c.toml"], 1))
    assert "reads /opt/c.toml, not /etc/containerd/config.toml" in client_hosts.restart_hint(config, other)

    assert "none runs now" in client_hosts.restart_hint(config, fake_proc(tmp_path / "d"))


def test_a_given_certificate_s_ca_is_handed_out_the_same_way(tmp_path, paths):
    ca = tmp_path / "their-ca.crt"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\ntheirs\n-----END CERTIFICATE-----\n")
    config = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                          DOCKER_MIRROR_PORT=15200, DOCKER_MIRROR_TLS=True,
                          DOCKER_MIRROR_TLS_CERTIFICATE="/etc/ssl/m.pem", DOCKER_MIRROR_TLS_KEY="/etc/ssl/m.key",
                          DOCKER_MIRROR_TLS_CA_CERTIFICATE=str(ca))
    settings = settings_mod.load(config)
    assert not settings.tls_generate and settings.tls_ca == str(ca)
    clients.apply(settings, paths, reload=False)
    assert (paths.docker_certs_dir / "127.0.0.1:15200" / "ca.crt").read_bytes() == ca.read_bytes()
    hosts = tomllib.loads((paths.certs_dir / "docker.io" / "hosts.toml").read_text())
    assert Path(hosts["host"]["https://127.0.0.1:15200"]["ca"]).read_bytes() == ca.read_bytes()
    clients.undo(settings, reload=False)
    assert not (paths.docker_certs_dir / "127.0.0.1:15200").exists()

    # without it, a given certificate is one clients already trust: nothing handed out
    plain = settings_mod.load(write_config(tmp_path / "plain.config", olddefconfig=True,
                                           DOCKER_MIRROR_PATH=str(tmp_path / "mirror"), DOCKER_MIRROR_PORT=15200,
                                           DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_CERTIFICATE="/etc/ssl/m.pem",
                                           DOCKER_MIRROR_TLS_KEY="/etc/ssl/m.key"))
    assert plain.tls_ca is None
    clients.apply(plain, paths, reload=False)
    assert not paths.docker_certs_dir.exists()
    assert "ca" not in tomllib.loads((paths.certs_dir / "docker.io" / "hosts.toml").read_text())["host"][
        "https://127.0.0.1:15200"]
