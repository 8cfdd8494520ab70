"""The table of clients (mirror.client_table) and the files merged into users' own
files (BuildKit's buildkitd.toml, k3s/RKE2's registries.yaml): found or absent by what a
root of the test's own holds, what each file holds checked against the keys and shapes the
clients' docs name, merges that keep every byte of the user's text, and undo putting each
file back byte for byte (mode included). No engine: files under tmp_path only.

Shapes, from the clients' docs:
- BuildKit (docs/buildkitd.toml.md): [registry."docker.io"] mirrors = ["host:port"] (bare
  hosts, no scheme), and a table per mirror host with http = true or ca = ["file"].
- k3s (docs.k3s.io/installation/private-registry): mirrors.<registry>.endpoint = [URL with
  scheme]; configs."host:port".auth.{username,password}, configs."host:port".tls.ca_file.
"""

import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from mirror import errors
from mirror.config import settings as settings_mod
from mirror.host import credential, tls
from mirror.host.client_files import ClientPaths
from mirror import client_merge, client_table
from mirror.model import client_config
from mirror.model.client_config import HostMirror
from mirror.services import client_probe, client_status, clients, status
from support.configs import run_mirror, write_config
from support.pullthrough import DEBIAN_CONTAINERD_CONFIG


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture
def root(tmp_path):
    (tmp_path / "host").mkdir()
    (tmp_path / "bin").mkdir()    # an empty PATH: clients are found by their directories only
    return tmp_path


@pytest.fixture
def paths(root):
    return ClientPaths.under(root / "host", search_path=str(root / "bin"))


@pytest.fixture
def settings(root):
    config = write_config(root / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(root / "mirror"),
                          DOCKER_MIRROR_PORT=15300, DOCKER_MIRROR_GHCR=True)
    return settings_mod.load(config)


@pytest.fixture
def tls_settings(root):
    users = root / "htpasswd"
    users.write_text(f"alice:{credential._bcrypt('pw')}\n")
    config = write_config(root / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(root / "mirror"),
                          DOCKER_MIRROR_PORT=15310, DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_TLS=True,
                          DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(users),
                          DOCKER_MIRROR_CLIENT_USERNAME="alice", DOCKER_MIRROR_CLIENT_PASSWORD="pw")
    settings = settings_mod.load(config)
    tls.ensure(settings)
    return settings


def states(paths):
    return {f.client.key: f.state for f in client_table.survey(paths, client_probe.look(paths))}


# ---------------------------------------------------------------- found, absent, blocked

def test_a_client_is_found_by_its_program_or_its_directory(paths, root):
    assert states(paths) == {"docker": "configure", "containerd": "configure",
                             "docker-containerd-store": "absent", "containers": "absent",
                             "buildkit": "absent", "kind": "absent", "k3s": "absent", "rke2": "absent"}
    (paths.k3s_registries.parent).mkdir(parents=True)
    for program in ("buildkitd", "kind"):
        (root / "bin" / program).write_text("#!/bin/sh\n")
        (root / "bin" / program).chmod(0o755)
    assert states(paths)["k3s"] == "configure" and states(paths)["buildkit"] == "configure"
    assert states(paths)["kind"] == "blocked"   # found, and said why the product cannot configure it
    lines = clients.client_lines(client_table.survey(paths, client_probe.look(paths)), {})
    assert any(line.startswith("client kind (Kubernetes in Docker): NOT configured: its nodes are containers")
               and "containerdConfigPatches" in line for line in lines), lines


def test_paths_that_leave_a_client_out_do_not_look_at_it(tmp_path):
    # callers naming only daemon.json and containerd's files (as before the table) touch nothing else
    # (kind has no files: only its program is looked for, to say why it is not configured)
    only = ClientPaths(daemon_json=tmp_path / "daemon.json", certs_dir=tmp_path / "certs.d")
    assert {f.client.key for f in client_table.survey(only, client_probe.look(only))} == \
        {"docker", "containerd", "kind"}


def test_a_v1_registries_conf_blocks_the_drop_in_with_the_reason(settings, paths):
    paths.containers_dir.mkdir(parents=True)
    (paths.containers_dir / "registries.conf").write_text('[registries.search]\nregistries = ["docker.io"]\n')
    report = clients.apply(settings, paths, reload=False)
    line = next(x for x in report.lines if x.startswith("client Podman"))
    assert "NOT configured" in line and "v1 format" in line and "registries.conf" in line
    assert not (paths.containers_dir / "registries.conf.d").exists()
    clients.undo(settings, reload=False)


def test_the_report_says_configured_absent_and_why(settings, paths):
    paths.containers_dir.mkdir(parents=True)
    report = "\n".join(clients.apply(settings, paths, reload=False).lines)
    assert f"client Podman, Buildah, Skopeo, CRI-O (containers/image): configured ({paths.containers_dir} exists)" \
        in report
    assert f"client k3s: absent (no k3s on PATH and no {paths.k3s_registries.parent})" in report
    assert "client kind (Kubernetes in Docker): absent (no kind on PATH)" in report
    assert "auth.json per user" in report
    drop_in = tomllib.loads((paths.containers_dir / "registries.conf.d/50-docker-mirror.conf").read_text())
    assert [(r["prefix"], r["location"], r["mirror"]) for r in drop_in["registry"]] == [
        ("docker.io", "docker.io", [{"location": "127.0.0.1:15300", "insecure": True}]),
        ("ghcr.io", "ghcr.io", [{"location": "127.0.0.1:15301", "insecure": True}])]
    clients.undo(settings, reload=False)
    assert not (paths.containers_dir / "registries.conf.d").exists() and paths.containers_dir.is_dir()


# ---------------------------------------------------------------- BuildKit

USER_BUILDKITD = """\
# my builder
debug = true

[worker.oci]
  max-parallelism = 4

[registry."quay.io"]
  mirrors = ["quay-mirror.example:443"]
"""


def test_buildkitd_toml_gets_our_tables_appended_and_undo_puts_it_back(settings, paths, root):
    paths.buildkit_config.parent.mkdir(parents=True)
    paths.buildkit_config.write_text(USER_BUILDKITD)
    before = tree(root / "host")
    clients.apply(settings, paths, reload=False)
    text = paths.buildkit_config.read_text()
    assert text.startswith(USER_BUILDKITD)          # not one byte of the user's text moved
    doc = tomllib.loads(text)
    assert doc["debug"] is True and doc["worker"] == {"oci": {"max-parallelism": 4}}
    assert doc["registry"]["quay.io"] == {"mirrors": ["quay-mirror.example:443"]}
    assert doc["registry"]["docker.io"] == {"mirrors": ["127.0.0.1:15300"]}   # a bare host, no scheme
    assert doc["registry"]["ghcr.io"] == {"mirrors": ["127.0.0.1:15301"]}
    assert doc["registry"]["127.0.0.1:15300"] == {"http": True}
    again = clients.apply(settings, paths, reload=False)
    assert not any("merged in" in line for line in again.lines)
    assert paths.buildkit_config.read_text() == text
    clients.undo(settings, reload=False)
    assert {k: v for k, v in tree(root / "host").items() if ".bak-" not in k} == before


def test_buildkit_over_tls_names_the_ca_the_product_wrote(tls_settings, paths):
    paths.buildkit_config.parent.mkdir(parents=True)
    clients.apply(tls_settings, paths, reload=False)
    doc = tomllib.loads(paths.buildkit_config.read_text())
    (ca,) = doc["registry"]["127.0.0.1:15310"]["ca"]
    assert "http" not in doc["registry"]["127.0.0.1:15310"]
    assert Path(ca).read_bytes() == Path(tls_settings.tls_ca).read_bytes()
    clients.undo(tls_settings, reload=False)
    assert not paths.buildkit_config.exists()


def test_the_users_own_registry_table_is_left_and_said(settings, paths):
    paths.buildkit_config.parent.mkdir(parents=True)
    paths.buildkit_config.write_text('[registry."docker.io"]\n  mirrors = ["their.example"]\n')
    report = "\n".join(clients.apply(settings, paths, reload=False).lines)
    doc = tomllib.loads(paths.buildkit_config.read_text())
    assert doc["registry"]["docker.io"] == {"mirrors": ["their.example"]}
    assert doc["registry"]["ghcr.io"] == {"mirrors": ["127.0.0.1:15301"]}
    assert 'has its own [registry."docker.io"]: left as it is' in report
    clients.undo(settings, reload=False)


def test_an_invalid_buildkitd_toml_is_not_configured_and_the_rest_goes_on(settings, paths):
    paths.buildkit_config.parent.mkdir(parents=True)
    paths.buildkit_config.write_text("[registry\n")
    report = "\n".join(clients.apply(settings, paths, reload=False).lines)
    assert f"client BuildKit (buildkitd outside dockerd): NOT configured: {paths.buildkit_config}: not valid TOML" \
        in report
    assert paths.buildkit_config.read_text() == "[registry\n"
    assert paths.daemon_json.is_file()     # the other clients were configured
    clients.undo(settings, reload=False)


# ---------------------------------------------------------------- k3s / RKE2

USER_REGISTRIES_YAML = """\
# ours, by hand
mirrors:
    quay.io:
        endpoint:
            - "https://quay-mirror.example"
configs:
    "quay-mirror.example":
        tls:
            insecure_skip_verify: true
"""


def test_registries_yaml_gets_our_entries_under_the_users_keys(tls_settings, paths, root):
    paths.k3s_registries.parent.mkdir(parents=True)
    paths.k3s_registries.write_text(USER_REGISTRIES_YAML)
    paths.k3s_registries.chmod(0o644)
    before = tree(root / "host")
    report = clients.apply(tls_settings, paths, reload=False)
    doc = yaml.safe_load(paths.k3s_registries.read_text())
    assert doc["mirrors"]["quay.io"] == {"endpoint": ["https://quay-mirror.example"]}
    assert doc["mirrors"]["docker.io"] == {"endpoint": ["https://127.0.0.1:15310"]}   # URLs, with the scheme
    assert doc["mirrors"]["ghcr.io"] == {"endpoint": ["https://127.0.0.1:15311"]}
    assert doc["configs"]["quay-mirror.example"] == {"tls": {"insecure_skip_verify": True}}
    config = doc["configs"]["127.0.0.1:15310"]
    assert config["auth"] == {"username": "alice", "password": "pw"}
    assert Path(config["tls"]["ca_file"]).read_bytes() == Path(tls_settings.tls_ca).read_bytes()
    assert paths.k3s_registries.stat().st_mode & 0o777 == 0o600    # it holds a password now
    # every line of the user's text is still there, in order
    lines = paths.k3s_registries.read_text().splitlines()
    assert [x for x in lines if x in USER_REGISTRIES_YAML.splitlines()] == USER_REGISTRIES_YAML.splitlines()
    assert "pw" not in "\n".join(report.lines)
    clients.undo(tls_settings, reload=False)
    assert {k: v for k, v in tree(root / "host").items() if ".bak-" not in k} == before
    assert paths.k3s_registries.stat().st_mode & 0o777 == 0o644


def test_a_new_registries_yaml_for_rke2_and_a_later_edit_kept_by_undo(settings, paths):
    paths.rke2_registries.parent.mkdir(parents=True)
    clients.apply(settings, paths, reload=False)
    doc = yaml.safe_load(paths.rke2_registries.read_text())
    assert doc == {"mirrors": {"docker.io": {"endpoint": ["http://127.0.0.1:15300"]},
                               "ghcr.io": {"endpoint": ["http://127.0.0.1:15301"]}}}
    with open(paths.rke2_registries, "a") as f:
        f.write("configs:\n  other.example:\n    tls:\n      insecure_skip_verify: true\n")
    clients.undo(settings, reload=False)
    left = yaml.safe_load(paths.rke2_registries.read_text())
    assert left == {"configs": {"other.example": {"tls": {"insecure_skip_verify": True}}}}


@pytest.mark.parametrize("text, why", [("mirrors: {quay.io: {endpoint: [x]}}\n", "form this tool does not edit"),
                                       ("- a\n", "not a mapping"),
                                       ("mirrors: [\n", "not valid YAML at line 2")])
def test_registries_yaml_this_tool_cannot_edit_is_left_with_the_reason(settings, paths, text, why):
    paths.k3s_registries.parent.mkdir(parents=True)
    paths.k3s_registries.write_text(text)
    report = "\n".join(clients.apply(settings, paths, reload=False).lines)
    assert paths.k3s_registries.read_text() == text
    line = next(x for x in report.splitlines() if x.startswith("client k3s"))
    assert "NOT configured" in line and why in line
    clients.undo(settings, reload=False)


def test_a_merge_knows_the_entries_a_run_before_wrote(settings):
    """What a fleet host, which keeps no state, goes by on a second run: the registries whose
    entry names our mirror already, never the user's own."""
    hosts = client_config.wanted(settings).hosts
    ours = {h.registry for h in hosts}
    buildkitd = client_merge.buildkit(USER_BUILDKITD, hosts, {}, "buildkitd.toml").text
    assert client_merge.already_ours("buildkit", buildkitd, hosts) == ours
    assert client_merge.already_ours("buildkit", USER_BUILDKITD, hosts) == set()
    registries = client_merge.k3s(None, hosts, {}, None, "registries.yaml").text
    assert client_merge.already_ours("k3s", registries, hosts) == ours
    for not_ours in (None, "mirrors: [1, 2]\n", "registry = 3\n", "not: [valid"):
        assert client_merge.already_ours("k3s", not_ours, hosts) == set()
        assert client_merge.already_ours("buildkit", not_ours, hosts) == set()


def test_merge_pieces_come_out_exactly():
    hosts = [HostMirror("docker.io", "https://registry-1.docker.io", "http://10.0.0.1:5000", "10.0.0.1:5000")]
    merged = client_merge.k3s(USER_REGISTRIES_YAML, hosts, {}, None, "registries.yaml")
    assert client_merge.remove(merged.text, merged.inserted) == USER_REGISTRIES_YAML
    assert client_merge.remove(merged.text.replace("10.0.0.1:5000", "x"), merged.inserted) is None


def test_a_port_change_replaces_our_entries_in_the_users_file(settings, paths, root):
    paths.buildkit_config.parent.mkdir(parents=True)
    paths.buildkit_config.write_text(USER_BUILDKITD)
    clients.apply(settings, paths, reload=False)
    config = write_config(root / ".config2", olddefconfig=True, DOCKER_MIRROR_PATH=settings.path,
                          DOCKER_MIRROR_PORT=15400, DOCKER_MIRROR_GHCR=True)
    moved = settings_mod.load(config)
    clients.apply(moved, paths, reload=False)
    doc = tomllib.loads(paths.buildkit_config.read_text())
    assert doc["registry"]["docker.io"] == {"mirrors": ["127.0.0.1:15400"]} and "127.0.0.1:15300" not in doc["registry"]
    assert paths.buildkit_config.read_text().startswith(USER_BUILDKITD)
    clients.undo(moved, reload=False)
    assert paths.buildkit_config.read_text() == USER_BUILDKITD


def test_cli_root_writes_nothing_outside_it(settings, root):
    (root / "host/etc/containers").mkdir(parents=True)
    applied = run_mirror("clients", "--root", str(root / "host"), config=Path(settings.config_path))
    assert "client Podman, Buildah, Skopeo, CRI-O (containers/image): configured" in applied.stdout
    assert (root / "host/etc/containers/registries.conf.d/50-docker-mirror.conf").is_file()
    run_mirror("clients-undo", config=Path(settings.config_path))
    assert not (root / "host/etc/containers/registries.conf.d").exists()


# ---------------------------------------------------------------- status

def test_status_says_per_client_whether_it_is_pointed_at_the_mirror(settings, paths):
    paths.containers_dir.mkdir(parents=True)
    paths.k3s_registries.parent.mkdir(parents=True)
    before = {r["key"]: r["pointed"] for r in client_status.rows(settings, paths)}
    assert before["containers"] is False and before["k3s"] is False and before["buildkit"] is None
    clients.apply(settings, paths, reload=False)
    rows = {r["key"]: r for r in client_status.rows(settings, paths)}
    assert {k: r["pointed"] for k, r in rows.items()} == {
        "docker": True, "containerd": True, "docker-containerd-store": None, "containers": True,
        "buildkit": None, "kind": None, "k3s": True, "rke2": None}
    drop_in = paths.containers_dir / "registries.conf.d/50-docker-mirror.conf"
    drop_in.write_text("# emptied by hand\n")
    row = next(r for r in client_status.rows(settings, paths) if r["key"] == "containers")
    assert row["pointed"] is False and str(drop_in) in row["why"]
    clients.undo(settings, reload=False)


def test_status_text_and_json_show_each_client(settings, paths):
    paths.containers_dir.mkdir(parents=True)
    clients.apply(settings, paths, reload=False)
    doc = status.gather(settings, client=None, headroom=False)
    doc["clients"] = client_status.rows(settings, paths)   # this test's root, not the host's /etc
    assert {"client": "Podman, Buildah, Skopeo, CRI-O (containers/image)", "key": "containers",
            "found": True, "pointed": True, "why": f"{paths.containers_dir} exists"} in json.loads(json.dumps(doc))["clients"]
    text = status.format_text(doc)
    assert "  Podman, Buildah, Skopeo, CRI-O (containers/image): pointed at the mirror" in text
    assert "k3s" in text.split("  absent: ")[1].splitlines()[0]
    (paths.containers_dir / "registries.conf.d/50-docker-mirror.conf").write_text("# emptied by hand\n")
    doc["clients"] = client_status.rows(settings, paths)
    assert "  Podman, Buildah, Skopeo, CRI-O (containers/image): NOT pointed at the mirror: " in \
        status.format_text(doc)
    clients.undo(settings, reload=False)


def test_a_colon_separated_config_path_gets_the_files_in_its_first_directory_and_a_warning(
        settings, paths, root):
    """containerd 2.x's transfer-service pulls take a colon-separated config_path as one literal
    directory (containerd #12808): the files go into the first, and the report says so."""
    first, second = root / "host/etc/containerd/certs.d", root / "host/opt/certs.d"
    paths.containerd_config.parent.mkdir(parents=True, exist_ok=True)
    paths.containerd_config.write_text('version = 3\n[plugins."io.containerd.cri.v1.images".registry]\n'
                                       f'  config_path = "{first}:{second}"\n')
    report = "\n".join(clients.apply(settings, paths, reload=False).lines)
    assert (first / "docker.io/hosts.toml").is_file() and not second.exists()
    assert f"config_path {first}:{second} names several directories: hosts.toml go in the first, {first}" \
        in report and "#12808" in report and "set config_path to one directory" in report
    clients.undo(settings, reload=False)


def test_containerd_itself_reads_the_config_path_the_product_set(settings, paths):
    """`containerd config dump` (containerd's own parser and defaults) on the edited config."""
    paths.containerd_config.parent.mkdir(parents=True)
    paths.containerd_config.write_text(DEBIAN_CONTAINERD_CONFIG)
    clients.apply(settings, paths, reload=False)
    dumped = subprocess.run(["containerd", "--config", str(paths.containerd_config), "config", "dump"],
                            capture_output=True, text=True, timeout=30, check=True).stdout
    cri = tomllib.loads(dumped)["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["registry"]["config_path"] == str(paths.certs_dir)
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"      # the user's settings, still read
    clients.undo(settings, reload=False)
    assert paths.containerd_config.read_text() == DEBIAN_CONTAINERD_CONFIG


def test_a_drop_in_of_the_users_for_the_same_prefix_is_named_with_who_wins(settings, paths):
    conf_d = paths.containers_dir / "registries.conf.d"
    conf_d.mkdir(parents=True)
    (conf_d / "10-corp.conf").write_text('[[registry]]\nprefix = "ghcr.io"\nlocation = "ghcr.corp.example"\n')
    (conf_d / "99-late.conf").write_text('[[registry]]\nlocation = "docker.io"\n')
    report = "\n".join(clients.apply(settings, paths, reload=False).lines)
    assert f"{conf_d / '10-corp.conf'}: has its own [[registry]] for ghcr.io, which 50-docker-mirror.conf replaces" \
        in report
    assert f"{conf_d / '99-late.conf'}: has its own [[registry]] for docker.io, which is read after ours and wins" \
        in report
    clients.undo(settings, reload=False)
    assert sorted(p.name for p in conf_d.iterdir()) == ["10-corp.conf", "99-late.conf"]


# ---------------------------------------------------------------- secrets, shapes, purity

def test_a_password_merged_into_a_users_0644_file_is_never_readable_by_others(tls_settings, paths, root,
                                                                             monkeypatch):
    """The k3s registries.yaml (a password) and a hosts.toml of someone else's (an
    Authorization header), both 0644 before: each temp file holding the secret is 0600 when
    its bytes are synced, i.e. before the rename makes it the file, not chmod-ed after."""
    paths.k3s_registries.parent.mkdir(parents=True)
    paths.k3s_registries.write_text(USER_REGISTRIES_YAML)
    paths.k3s_registries.chmod(0o644)
    theirs = paths.certs_dir / "docker.io/hosts.toml"
    theirs.parent.mkdir(parents=True)
    theirs.write_text('server = "https://registry-1.docker.io"\n')
    theirs.chmod(0o644)
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        real_fsync(fd)
        name = os.readlink(f"/proc/self/fd/{fd}")
        synced.append((name, os.fstat(fd).st_mode & 0o777, Path(name).read_bytes()))
    monkeypatch.setattr(os, "fsync", fsync)
    clients.apply(tls_settings, paths, reload=False)
    monkeypatch.undo()
    holding = [(name, mode) for name, mode, data in synced if b"password:" in data or b"Authorization" in data]
    assert {Path(name).parent for name, _ in holding} >= {paths.k3s_registries.parent, theirs.parent}
    assert [(name, mode) for name, mode in holding if mode != 0o600] == []
    assert all(Path(name).name.startswith(".") for name, _ in holding)      # the temp files, before the rename
    assert paths.k3s_registries.stat().st_mode & 0o777 == 0o600
    assert theirs.stat().st_mode & 0o777 == 0o600
    clients.undo(tls_settings, reload=False)
    assert paths.k3s_registries.read_text() == USER_REGISTRIES_YAML
    assert paths.k3s_registries.stat().st_mode & 0o777 == 0o644


def test_a_users_file_of_the_wrong_shape_is_named_by_type_never_by_content(settings, paths):
    paths.k3s_registries.parent.mkdir(parents=True)
    paths.k3s_registries.write_text("mirrors: hunter2-token\n")
    report = "\n".join(clients.apply(settings, paths, reload=False).lines)
    line = next(x for x in report.splitlines() if x.startswith("client k3s"))
    assert "NOT configured" in line and "mirrors is a str, not a mapping" in line
    assert "hunter2" not in report
    with pytest.raises(errors.ClientFileError) as raised:
        client_merge.buildkit('registry = "s3cret"\n', [], {}, "buildkitd.toml")
    assert "s3cret" not in str(raised.value) and "registry is a str, not a table" in str(raised.value)
    clients.undo(settings, reload=False)


@pytest.mark.parametrize("text, why", [(b"[]", "not an object"), (b'"x"', "not an object"),
                                       (b'{"registry-mirrors": "http://m"}', "not a list of strings")])
def test_status_on_a_daemon_json_of_the_wrong_shape_says_why(settings, paths, text, why):
    paths.daemon_json.parent.mkdir(parents=True)
    paths.daemon_json.write_bytes(text)
    row = next(r for r in client_status.rows(settings, paths) if r["key"] == "docker")
    assert row["pointed"] is False and why in row["why"] and str(paths.daemon_json) in row["why"]


def test_the_table_judges_what_it_is_shown_without_looking_at_the_host(tmp_path):
    """survey is pure: a HostView (what services.client_probe saw) decides, not the disk."""
    paths = ClientPaths.under(tmp_path / "nowhere", search_path=str(tmp_path / "nobin"))
    main = paths.containers_dir / "registries.conf"
    late = paths.containers_dir / "registries.conf.d/99-late.conf"

    def survey(**view):
        return {f.client.key: f for f in client_table.survey(paths, client_table.HostView(**view))}
    found = survey(programs=frozenset({"podman"}), directories=frozenset({paths.k3s_registries.parent}))
    assert found["containers"].state == "configure" and found["containers"].why == "podman on PATH"
    assert found["k3s"].why == f"{paths.k3s_registries.parent} exists" and found["buildkit"].state == "absent"
    v1 = survey(programs=frozenset({"podman"}), seen={main: b'[registries.search]\nregistries = ["docker.io"]\n'})
    assert v1["containers"].state == "blocked" and "v1 format" in v1["containers"].why
    denied = survey(programs=frozenset({"podman"}), seen={main: PermissionError(13, "Permission denied")})
    assert "cannot be read" in denied["containers"].why
    want = client_config.wanted(settings_mod.load(write_config(
        tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(tmp_path / "m"), DOCKER_MIRROR_PORT=15320)))
    notes = client_table.containers_overlaps(want, paths, {late: b'[[registry]]\nlocation = "docker.io"\n'})
    assert notes == [f"{late}: has its own [[registry]] for docker.io, which is read after ours and wins: "
                     "the mirror is not used for it"]
    assert not (tmp_path / "nowhere").exists()
