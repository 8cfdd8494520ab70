"""`make docker-mirror-clients` / `-undo`: this host's Docker and containerd and the mirror.

The pure merge and planning functions are checked on their own; apply/undo
run on files in a tmp dir (dockerd is "not running" there: an absent pid
file), and then on the host's real /etc/docker/daemon.json with the real
dockerd, so a real `docker pull` and real `ctr` pulls go through
pull-through registry processes in front of local upstreams.
"""

import dataclasses
import json
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest

from mirror import errors
from mirror.services import clients
from mirror.config import dotconfig
from mirror.config import settings as settings_mod
from mirror.host.client_files import ClientPaths
from mirror import client_text
from mirror.model import client_config
from support.configs import run_mirror, write_config
from support.pullthrough import (DEBIAN_CONTAINERD_CONFIG, ProxyRegistry, ctr, ctr_remove_namespace,
                                 real_daemon_json)
from support.upstream import UpstreamRegistry, push_image


@pytest.fixture(scope="module")
def base_settings(tmp_path_factory):
    """Docker Hub, ghcr.io, quay.io and a custom registry mirrored on 127.0.0.1 (no process)."""
    tmp = tmp_path_factory.mktemp("clients-settings")
    config = write_config(tmp / ".config", olddefconfig=True, DOCKER_MIRROR_PORT=15000,
                          DOCKER_MIRROR_PATH=str(tmp / "mirror"), DOCKER_MIRROR_GHCR=True,
                          DOCKER_MIRROR_QUAY=True, DOCKER_MIRROR_CUSTOM=True,
                          DOCKER_MIRROR_CUSTOM_REGISTRY="registry.example.com:5443",
                          DOCKER_MIRROR_CUSTOM_REMOTE_URL="https://registry.example.com:5443")
    return settings_mod.load(config)


def reloaded(settings, **symbols):
    """`settings` with .config symbols changed, through the real loader, so that
    every derived address follows (a dataclasses.replace of bind_address would not)."""
    config = dotconfig.load(settings.config_path).with_values(symbols, origin="test")
    return dataclasses.replace(settings_mod.from_dotconfig(config), path=settings.path)


@pytest.fixture
def settings(base_settings, tmp_path):
    # a state file of its own per test
    return dataclasses.replace(base_settings, path=str(tmp_path / "mirror"))


@pytest.fixture
def paths(tmp_path):
    etc = tmp_path / "etc"
    (etc / "docker").mkdir(parents=True)
    # no pid file: dockerd counts as not running, and the real one is never signalled
    return ClientPaths(daemon_json=etc / "docker/daemon.json", docker_pid=tmp_path / "docker.pid",
                               containerd_config=etc / "containerd/config.toml",
                               certs_dir=etc / "containerd/certs.d")


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and directory (None) under `root`."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


# ---------------------------------------------------------------- pure: what is wanted

def test_loopback_plain_http_mirror_needs_no_insecure_registries(settings):
    want = client_config.wanted(settings)
    assert want.mirrors == ("http://127.0.0.1:15000",)
    assert want.insecure == ()  # dockerd allows plain HTTP to 127.0.0.0/8 by itself
    assert [(h.registry, h.server, h.mirror_url) for h in want.hosts] == [
        ("docker.io", "https://registry-1.docker.io", "http://127.0.0.1:15000"),
        ("ghcr.io", "https://ghcr.io", "http://127.0.0.1:15001"),
        ("quay.io", "https://quay.io", "http://127.0.0.1:15002"),
        ("registry.example.com:5443", "https://registry.example.com:5443", "http://127.0.0.1:15004"),
    ]


def test_wildcard_bind_is_reached_on_loopback(settings):
    want = client_config.wanted(reloaded(settings, DOCKER_MIRROR_BIND_ADDRESS="0.0.0.0"))
    assert want.mirrors == ("http://127.0.0.1:15000",) and want.insecure == ()


def test_lan_bind_over_plain_http_lists_every_mirror_as_insecure(settings):
    # 192.0.2.0/24 is TEST-NET-1: only written into files, never contacted
    want = client_config.wanted(reloaded(settings, DOCKER_MIRROR_BIND_ADDRESS="192.0.2.7"))
    assert want.mirrors == ("http://192.0.2.7:15000",)
    assert want.insecure == ("192.0.2.7:15000", "192.0.2.7:15001", "192.0.2.7:15002", "192.0.2.7:15004")


def test_lan_bind_over_tls_needs_no_insecure_registries(settings):
    want = client_config.wanted(reloaded(settings, DOCKER_MIRROR_BIND_ADDRESS="192.0.2.7", DOCKER_MIRROR_TLS=True,
                                         DOCKER_MIRROR_TLS_CERTIFICATE="/etc/ssl/mirror.pem",
                                         DOCKER_MIRROR_TLS_KEY="/etc/ssl/mirror.key"))
    assert want.mirrors == ("https://192.0.2.7:15000",) and want.insecure == ()
    assert want.hosts[1].mirror_url == "https://192.0.2.7:15001"


# ---------------------------------------------------------------- pure: daemon.json

@pytest.mark.parametrize("data", [None, b"", b" \n"])
def test_absent_or_blank_daemon_json_reads_as_empty_object(data):
    assert client_config.parse_daemon_json(data, "/etc/docker/daemon.json") == {}


def test_merge_keeps_other_keys_and_entries_and_puts_the_mirror_first():
    current = {"log-driver": "local", "registry-mirrors": ["https://corp.example"],
               "insecure-registries": ["10.9.9.9:5000"]}
    new, added = client_config.merge_daemon_json(current, ["http://192.0.2.7:5000"], ["192.0.2.7:5000"])
    assert new == {"log-driver": "local",
                   "registry-mirrors": ["http://192.0.2.7:5000", "https://corp.example"],
                   "insecure-registries": ["10.9.9.9:5000", "192.0.2.7:5000"]}
    assert added == {"registry-mirrors": ["http://192.0.2.7:5000"], "insecure-registries": ["192.0.2.7:5000"]}
    assert current["registry-mirrors"] == ["https://corp.example"]  # the input is not changed


def test_mirror_already_present_is_neither_duplicated_nor_recorded():
    # dockerd writes mirrors with a trailing slash: that is the same mirror
    current = {"registry-mirrors": ["http://127.0.0.1:5000/"]}
    new, added = client_config.merge_daemon_json(current, ["http://127.0.0.1:5000"], [])
    assert new == current and added == {}
    assert client_config.unmerge_daemon_json(new, added, []) == current


def test_no_insecure_key_is_created_when_none_is_needed():
    new, added = client_config.merge_daemon_json({}, ["http://127.0.0.1:5000"], [])
    assert new == {"registry-mirrors": ["http://127.0.0.1:5000"]}


def test_unmerge_removes_only_our_entries_and_only_keys_we_created():
    current = {"registry-mirrors": ["http://m:5000", "https://corp.example"],
               "insecure-registries": ["m:5000"]}
    added = {"registry-mirrors": ["http://m:5000"], "insecure-registries": ["m:5000"]}
    assert client_config.unmerge_daemon_json(current, added, ["insecure-registries"]) == \
        {"registry-mirrors": ["https://corp.example"]}
    # a key that was there before (even empty) stays
    assert client_config.unmerge_daemon_json({"insecure-registries": ["m:5000"]}, added, []) == \
        {"insecure-registries": []}


def test_invalid_json_error_names_file_line_and_column():
    with pytest.raises(errors.ClientFileError) as err:
        client_config.parse_daemon_json(b'{\n  "debug": true\n  "x": 1\n}\n', "/etc/docker/daemon.json")
    assert "/etc/docker/daemon.json" in str(err.value)
    assert "line 3, column 3" in str(err.value)


@pytest.mark.parametrize("text, what", [(b"[]", "not an object"),
                                        (b'{"registry-mirrors": "http://x"}', "not a list of strings")])
def test_daemon_json_of_the_wrong_shape_is_refused(text, what):
    with pytest.raises(errors.ClientFileError, match=what):
        client_config.parse_daemon_json(text, "daemon.json")


# ---------------------------------------------------------------- pure: containerd

def test_hosts_toml_lists_the_mirror_first_and_the_real_registry_as_server():
    doc = tomllib.loads(client_text.hosts_toml("docker.io", "http://127.0.0.1:5000"))
    assert doc["server"] == "https://registry-1.docker.io"
    assert doc["host"] == {"http://127.0.0.1:5000": {"capabilities": ["pull", "resolve"]}}


def test_absent_containerd_config_gets_a_minimal_one():
    plan = client_text.plan_containerd_config(None, "/etc/containerd/certs.d")
    doc = tomllib.loads(plan.new_text)
    assert doc["version"] == 2
    assert doc["plugins"]["io.containerd.grpc.v1.cri"]["registry"] == {"config_path": "/etc/containerd/certs.d"}


def test_debian_containerd_config_gets_a_registry_table_appended():
    plan = client_text.plan_containerd_config(DEBIAN_CONTAINERD_CONFIG, "/etc/containerd/certs.d")
    assert plan.new_text.startswith(DEBIAN_CONTAINERD_CONFIG)  # nothing of the user's text moves
    cri = tomllib.loads(plan.new_text)["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"
    assert client_text.remove_inserted(plan.new_text, plan.inserted) == DEBIAN_CONTAINERD_CONFIG


def test_existing_registry_table_gets_config_path_under_its_header():
    text = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
            '  [plugins."io.containerd.grpc.v1.cri".registry.configs."r.example".auth]\n'
            '    username = "u"\n')
    plan = client_text.plan_containerd_config(text, "/x/certs.d")
    registry = tomllib.loads(plan.new_text)["plugins"]["io.containerd.grpc.v1.cri"]["registry"]
    assert registry["config_path"] == "/x/certs.d"
    assert registry["configs"]["r.example"]["auth"] == {"username": "u"}


def test_containerd_config_path_set_elsewhere_is_kept_and_used():
    text = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/opt/certs.d"\n'
    plan = client_text.plan_containerd_config(text, "/etc/containerd/certs.d")
    assert plan.new_text is None and plan.certs_dir == "/opt/certs.d"


def test_containerd_2_config_is_edited_in_its_own_plugin_table():
    plan = client_text.plan_containerd_config("version = 3\n", "/etc/containerd/certs.d")
    doc = tomllib.loads(plan.new_text)
    assert doc["plugins"]["io.containerd.cri.v1.images"]["registry"]["config_path"] == "/etc/containerd/certs.d"


def test_deprecated_registry_mirrors_block_config_path_with_a_clear_error():
    text = ('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n'
            '  endpoint = ["https://m.example"]\n')
    with pytest.raises(errors.ClientFileError, match=r"config.toml: .*mirrors\] is set"):
        client_text.plan_containerd_config(text, "/etc/containerd/certs.d", "/etc/containerd/config.toml")


def test_invalid_containerd_config_error_names_file_and_line():
    with pytest.raises(errors.ClientFileError, match=r"/etc/containerd/config.toml: not valid TOML.*line 2"):
        client_text.plan_containerd_config("version = 2\n[plugins\n", "/c", "/etc/containerd/config.toml")


# ---------------------------------------------------------------- apply/undo on tmp files

DAEMON_JSON_CASES = {
    "absent": None,
    "empty": b"",
    "other-keys": b'{"log-driver":  "local",\n\t"debug": true,\n"registry-mirrors": ["https://corp.example"]}',
    "already-there": b'{"registry-mirrors": ["http://127.0.0.1:15000/"]}\n',
}


@pytest.mark.parametrize("case", DAEMON_JSON_CASES)
def test_apply_then_undo_restores_every_file_byte_for_byte(case, settings, paths, tmp_path):
    original = DAEMON_JSON_CASES[case]
    if original is not None:
        paths.daemon_json.write_bytes(original)
    paths.containerd_config.parent.mkdir()
    paths.containerd_config.write_text(DEBIAN_CONTAINERD_CONFIG)
    before = tree(tmp_path / "etc")

    report = clients.apply(settings, paths)

    doc = json.loads(paths.daemon_json.read_bytes())
    assert [m.rstrip("/") for m in doc["registry-mirrors"]].count("http://127.0.0.1:15000") == 1
    assert "insecure-registries" not in doc
    backups = list(paths.daemon_json.parent.glob("daemon.json.bak-*"))
    if case in ("absent", "already-there"):
        assert backups == []  # nothing to keep, or nothing changed
    else:
        assert [b.read_bytes() for b in backups] == [original]
    if case == "other-keys":
        assert doc["log-driver"] == "local" and doc["debug"] is True
        assert doc["registry-mirrors"] == ["http://127.0.0.1:15000", "https://corp.example"]
    state = json.loads(report.state_path.read_text())
    assert state["docker"]["added"] == ({} if case == "already-there"
                                        else {"registry-mirrors": ["http://127.0.0.1:15000"]})
    assert oct(report.state_path.stat().st_mode & 0o777) == "0o600"
    for registry in ("docker.io", "ghcr.io", "quay.io", "registry.example.com:5443"):
        assert (paths.certs_dir / registry / "hosts.toml").is_file()
    assert tomllib.loads(paths.containerd_config.read_text())["plugins"]["io.containerd.grpc.v1.cri"][
        "registry"]["config_path"] == str(paths.certs_dir)

    clients.undo(settings)

    after = {k: v for k, v in tree(tmp_path / "etc").items() if ".bak-" not in k}
    assert after == before
    assert not report.state_path.exists()


def test_second_apply_changes_nothing_and_undo_still_takes_everything_back(settings, paths, tmp_path):
    clients.apply(settings, paths)
    first = tree(tmp_path / "etc")
    report = clients.apply(settings, paths)
    assert tree(tmp_path / "etc") == first
    assert "already has the mirror settings" in "\n".join(report.lines)
    clients.undo(settings)
    assert tree(tmp_path / "etc") == {"docker": None}


def test_directories_apply_created_are_removed_by_undo(settings, paths, tmp_path):
    paths.daemon_json.parent.rmdir()  # no /etc/docker: Docker was never installed here
    apart = dataclasses.replace(paths, certs_dir=tmp_path / "etc/certs.d")
    clients.apply(settings, apart)
    assert paths.daemon_json.is_file() and paths.containerd_config.is_file()
    clients.undo(settings)
    assert tree(tmp_path / "etc") == {}


def test_invalid_daemon_json_is_left_untouched_and_nothing_else_is_written(settings, paths, tmp_path):
    paths.daemon_json.write_bytes(b'{"debug": true,,}\n')
    before = tree(tmp_path / "etc")
    with pytest.raises(errors.ClientFileError) as err:
        clients.apply(settings, paths)
    assert f"{paths.daemon_json}: not valid JSON" in str(err.value)
    assert "line 1, column 16" in str(err.value)
    # no backup, no hosts.toml, no containerd config, and no state to undo
    assert tree(tmp_path / "etc") == before
    assert not clients.state_path(settings).exists()


def test_read_only_daemon_json_is_a_clear_error_with_nothing_changed(settings, paths, tmp_path):
    # Root ignores mode bits, so chmod proves nothing; a read-only bind mount
    # (EROFS) stops root too, as on a host whose /etc is mounted read-only.
    paths.daemon_json.write_bytes(b'{"debug": true}\n')
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(paths.daemon_json.parent),
                              str(paths.daemon_json.parent)], capture_output=True, text=True)
    assert mounted.returncode == 0, f"cannot make a read-only bind mount: {mounted.stderr}"
    try:
        before = tree(tmp_path / "etc")
        with pytest.raises(errors.ClientFileError) as err:
            clients.apply(settings, paths)
        assert f"cannot write {paths.daemon_json}" in str(err.value)
        assert "read-only file system" in str(err.value) and "nothing was changed" in str(err.value)
        assert tree(tmp_path / "etc") == before
        assert not clients.state_path(settings).exists()
    finally:
        subprocess.run(["umount", str(paths.daemon_json.parent)], check=True)


def test_daemon_json_under_a_file_is_a_clear_error(settings, paths, tmp_path):
    # /etc/docker is a regular file here: no mount needed, and root cannot write either
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    bad = dataclasses.replace(paths, daemon_json=blocker / "daemon.json")
    with pytest.raises(errors.ClientFileError, match=r"(?i)daemon.json: not a directory; nothing was changed"):
        clients.apply(settings, bad)
    assert not clients.state_path(settings).exists() and not paths.certs_dir.exists()


def test_undo_after_someone_else_edited_daemon_json_takes_out_only_our_entries(settings, paths):
    paths.daemon_json.write_text('{"registry-mirrors": ["https://corp.example"]}')
    clients.apply(settings, paths)
    doc = json.loads(paths.daemon_json.read_text())
    doc["debug"] = True
    doc["registry-mirrors"].append("https://later.example")
    paths.daemon_json.write_text(json.dumps(doc))
    clients.undo(settings)
    assert json.loads(paths.daemon_json.read_text()) == {
        "registry-mirrors": ["https://corp.example", "https://later.example"], "debug": True}


def test_undo_with_a_broken_daemon_json_changes_nothing_and_can_be_run_again(settings, paths, tmp_path):
    clients.apply(settings, paths)
    paths.daemon_json.write_text('{"registry-mirrors": [')
    applied = tree(tmp_path / "etc")
    with pytest.raises(errors.ClientFileError, match=r"daemon.json: not valid JSON.*line 1, column 23"):
        clients.undo(settings)
    assert tree(tmp_path / "etc") == applied and clients.state_path(settings).exists()
    paths.daemon_json.write_text('{"registry-mirrors": ["http://127.0.0.1:15000"]}')  # fixed by hand
    clients.undo(settings)
    # someone else's edit: its file is kept as a backup before ours are taken out
    left = tree(tmp_path / "etc")
    assert [k for k in left if ".bak-" in k] and {k: v for k, v in left.items() if ".bak-" not in k} == \
        {"docker": None}


def test_a_changed_port_replaces_the_old_entries_on_the_next_apply(settings, paths):
    clients.apply(settings, paths)
    moved = reloaded(settings, DOCKER_MIRROR_PORT=settings.port + 100)
    clients.apply(moved, paths)
    assert json.loads(paths.daemon_json.read_text()) == {"registry-mirrors": ["http://127.0.0.1:15100"]}
    assert 'host."http://127.0.0.1:15101"' in (paths.certs_dir / "ghcr.io/hosts.toml").read_text()
    clients.undo(moved)
    assert not paths.daemon_json.exists() and not paths.certs_dir.exists()


def test_someone_elses_hosts_toml_is_backed_up_and_put_back(settings, paths):
    theirs = paths.certs_dir / "quay.io/hosts.toml"
    theirs.parent.mkdir(parents=True)
    theirs.write_text('server = "https://quay.io"\n')
    clients.apply(settings, paths)
    assert "127.0.0.1:15002" in theirs.read_text()
    assert [b.read_text() for b in theirs.parent.glob("hosts.toml.bak-*")] == ['server = "https://quay.io"\n']
    clients.undo(settings)
    assert theirs.read_text() == 'server = "https://quay.io"\n'
    assert not (paths.certs_dir / "ghcr.io").exists()  # ours: gone again


def test_disabled_mirror_points_no_client_at_it(settings, paths):
    with pytest.raises(errors.MirrorNotInUse, match="CONFIG_USE_DOCKER_MIRROR"):
        clients.apply(dataclasses.replace(settings, use=False), paths)
    assert not paths.daemon_json.exists()


def test_cli_clients_and_clients_undo(settings, paths, tmp_path):
    config = tmp_path / ".config"
    write_config(config, olddefconfig=True, DOCKER_MIRROR_PORT=15000, DOCKER_MIRROR_PATH=settings.path)
    # --root: every client's file under tmp_path (the paths fixture's layout), none in this host's /etc
    options = ["--root", str(tmp_path)]
    applied = run_mirror("clients", *options, config=config)
    assert "added registry-mirrors http://127.0.0.1:15000" in applied.stdout
    assert (paths.certs_dir / "docker.io/hosts.toml").is_file()
    undone = run_mirror("clients-undo", config=config)
    assert "removed" in undone.stdout and not paths.daemon_json.exists()
    paths.daemon_json.write_text("{oops")
    failed = run_mirror("clients", *options, config=config, check=False)
    assert failed.returncode == 2 and f"{paths.daemon_json}: not valid JSON" in failed.stderr


# ---------------------------------------------------------------- the real engine and containerd

@pytest.fixture(scope="module")
def registries(tmp_path_factory):
    """An upstream (with images) and a pull-through mirror process for each of three registries."""
    root = tmp_path_factory.mktemp("clients-registries")
    tag = f"clients-{uuid.uuid4().hex[:8]}"  # fresh content: nothing cached by earlier runs
    started, found = [], {}
    try:
        for key, repo in (("dockerhub", "library/alpine"), ("ghcr", "vllm-project/production-stack/router"),
                          ("quay", "coreos/etcd")):
            upstream = UpstreamRegistry(root / f"{key}-upstream").start()
            started.append(upstream)
            digest = push_image(upstream.url, repo, tag)
            fallback = push_image(upstream.url, repo, f"{tag}-fallback")
            proxy = ProxyRegistry(root / f"{key}-mirror", upstream.url).start()
            started.append(proxy)
            found[key] = dict(upstream=upstream, proxy=proxy, repo=repo, tag=tag, digest=digest,
                              fallback_digest=fallback)
        yield found
    finally:
        for registry in reversed(started):
            registry.stop()


@pytest.fixture(scope="module")
def live_settings(registries, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clients-live")
    config = write_config(tmp / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(tmp / "mirror"),
                          DOCKER_MIRROR_PORT=registries["dockerhub"]["proxy"].port,
                          DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_GHCR_PORT=registries["ghcr"]["proxy"].port,
                          DOCKER_MIRROR_QUAY=True, DOCKER_MIRROR_QUAY_PORT=registries["quay"]["proxy"].port)
    return settings_mod.load(config)


@pytest.fixture(scope="module")
def real_engine(docker_client, live_settings, tmp_path_factory):
    """apply() on the host's daemon.json and dockerd; containerd's files in a tmp dir
    (the running containerd is Docker's own, without CRI: ctr reads --hosts-dir)."""
    etc = tmp_path_factory.mktemp("clients-containerd")
    paths = ClientPaths(containerd_config=etc / "config.toml", certs_dir=etc / "certs.d")
    with real_daemon_json() as daemon_json:
        before = daemon_json.read_bytes() if daemon_json.exists() else None
        report = clients.apply(live_settings, paths)
        yield dict(paths=paths, before=before, report=report)


def ctr_pull(namespace, hosts_dir, ref):
    pulled = ctr(namespace, "image", "pull", "--hosts-dir", str(hosts_dir), ref, check=False)
    assert pulled.returncode == 0, f"ctr pull {ref} failed:\n{pulled.stdout}\n{pulled.stderr}"
    listing = ctr(namespace, "image", "ls").stdout
    return {line.split()[0]: line.split()[2] for line in listing.splitlines()[1:]}[ref]


@pytest.fixture
def namespace(docker_client):
    # ctr talks to the engine's own containerd, which runs only with the engine
    name = f"dmclients-{uuid.uuid4().hex[:8]}"
    yield name
    ctr_remove_namespace(name)


def test_real_dockerd_takes_the_mirror_on_reload(real_engine, registries, docker_client):
    mirror = f"http://127.0.0.1:{registries['dockerhub']['proxy'].port}"
    assert any("dockerd reloaded" in line for line in real_engine["report"].lines), real_engine["report"].lines
    assert mirror + "/" in docker_client.info()["RegistryConfig"]["Mirrors"]
    assert json.loads(ClientPaths().daemon_json.read_text())["registry-mirrors"][0] == mirror


def test_docker_pull_of_a_docker_hub_image_goes_through_the_mirror(real_engine, registries, docker_client):
    hub = registries["dockerhub"]
    ref = f"alpine:{hub['tag']}"  # docker.io/library/alpine: Docker Hub, which is not reachable here
    try:
        docker_client.images.pull("alpine", tag=hub["tag"])
        digests = {d.split("@", 1)[1] for d in docker_client.images.get(ref).attrs["RepoDigests"]}
        assert digests == {hub["digest"]}
        assert hub["proxy"].cached(hub["repo"], hub["tag"])
    finally:
        try:
            docker_client.images.remove(ref, force=True)
        except Exception:
            pass


@pytest.mark.parametrize("key, registry", [("ghcr", "ghcr.io"), ("quay", "quay.io")])
def test_ctr_pull_goes_through_the_mirror_of_its_registry(real_engine, registries, namespace, key, registry):
    r = registries[key]
    digest = ctr_pull(namespace, real_engine["paths"].certs_dir, f"{registry}/{r['repo']}:{r['tag']}")
    assert digest == r["digest"]
    assert r["proxy"].cached(r["repo"], r["tag"])


def test_undo_puts_the_real_daemon_json_back_byte_for_byte(real_engine, registries, docker_client, live_settings):
    report = clients.undo(live_settings)
    daemon_json = ClientPaths().daemon_json
    now = daemon_json.read_bytes() if daemon_json.exists() else None
    assert now == real_engine["before"]
    mirror = f"http://127.0.0.1:{registries['dockerhub']['proxy'].port}/"
    assert mirror not in (docker_client.info()["RegistryConfig"]["Mirrors"] or [])
    assert not real_engine["paths"].certs_dir.exists() and not real_engine["paths"].containerd_config.exists()
    assert any("dockerd reloaded" in line for line in report.lines)


def test_containerd_falls_back_to_the_server_when_the_mirror_is_down(registries, namespace, tmp_path):
    """The mirror host comes first and the server last; with the mirror process
    stopped, the pull still succeeds from the server, here a local registry
    standing for quay.io itself."""
    quay = registries["quay"]
    hosts = tmp_path / "certs.d/quay.io/hosts.toml"
    hosts.parent.mkdir(parents=True)
    hosts.write_text(client_text.hosts_toml("quay.io", quay["proxy"].url, server=quay["upstream"].url))
    ref = f"quay.io/{quay['repo']}:{quay['tag']}-fallback"
    quay["proxy"].stop()
    try:
        assert ctr_pull(namespace, tmp_path / "certs.d", ref) == quay["fallback_digest"]
    finally:
        quay["proxy"].start()
    assert not quay["proxy"].cached(quay["repo"], f"{quay['tag']}-fallback")
