"""`make docker-mirror-distribute`: ansible/docker-mirror-clients.yml on localhost,
with ansible/docker-mirror-clients-more.yml which it imports (Podman/Buildah/Skopeo/
CRI-O's registries.conf drop-in, Docker 29's containerd store, and BuildKit's
buildkitd.toml and k3s/RKE2's registries.yaml merged as the clients command merges them).

One playbook, run twice with a local connection (Ansible runs are slow: one
test holds both runs): first through `make docker-mirror-distribute`, then
with the ansible-playbook command the playbook documents. The Docker part works on the host's real
/etc/docker/daemon.json and dockerd (put back afterwards), so a real
`docker pull` shows the mirror in use; every other client file goes to a tmp
dir (-e containerd_certs_dir, containers_dir, docker_hosts_dir...: this host's
/etc/containers, /etc/docker/certs.d and /etc/containerd are never written), where
`ctr --hosts-dir` reads them, and each is compared with what `make docker-mirror-clients`
writes under a --root of its own.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml

from mirror.config.kconfig import ROOT
from mirror import client_text
from mirror.client_table import DROP_IN
from mirror.config import settings as settings_mod
from mirror.host.client_files import ClientPaths
from mirror.model import client_config
from mirror.services import clients
from support.configs import run_mirror, write_config
from support.pullthrough import (DEBIAN_CONTAINERD_CONFIG, ProxyRegistry, ctr, ctr_remove_namespace,
                                 real_daemon_json)
from support.upstream import UpstreamRegistry, push_image

PLAYBOOK = ROOT / "ansible" / "docker-mirror-clients.yml"
MORE_PLAYBOOK = ROOT / "ansible" / "docker-mirror-clients-more.yml"
RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                   r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)", re.M)


def ansible_playbook() -> str:
    # Missing Ansible is a failure, not a skip: CI must install it
    # (scripts/install-deps.sh --with-ansible), or this test proves nothing.
    found = Path(sys.executable).with_name("ansible-playbook")
    path = str(found) if found.exists() else shutil.which("ansible-playbook")
    if path is None:
        pytest.fail("ansible-playbook not found: run scripts/install-deps.sh --with-ansible "
                    "(pip install ansible-core)", pytrace=False)
    return path


def run_playbook(tmp: Path, extra_vars: Path, via_make: bool, playbook: Path = PLAYBOOK,
                 output: list | None = None, **variables) -> dict:
    """One run on localhost, through `make docker-mirror-distribute` (which adds the
    local connection itself) or the documented ansible-playbook command; returns
    the PLAY RECAP counters (and appends the run's stdout to `output`)."""
    overrides = [arg for name, value in variables.items() for arg in ("-e", f"{name}={value}")]
    env = {"ANSIBLE_HOME": str(tmp / "ansible-home"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_PIPELINING": "1"}  # no module files copied around: a faster run
    if via_make:
        argv = ["make", "--no-print-directory", "docker-mirror-distribute",
                f"EXTRA_VARS={extra_vars}", f"KCONFIG_CONFIG={tmp / '.config'}",
                f"ANSIBLE_PLAYBOOK={ansible_playbook()}", f"ANSIBLE_ARGS={shlex.join(overrides)}"]
    else:
        argv = [ansible_playbook(), "-i", "localhost,", "-c", "local", str(playbook), "-e", f"@{extra_vars}",
                "-e", f"ansible_python_interpreter={sys.executable}", *overrides]
    done = subprocess.run(argv, cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    recap = RECAP.search(done.stdout)
    if output is not None:
        output.append(done.stdout)
    assert done.returncode == 0 and recap, f"playbook failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return {k: int(v) if v.isdigit() else v for k, v in recap.groupdict().items()}


def tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# The backup copies of a changed file: the clients command's NAME.bak-<time>, Ansible's NAME.<pid>.<time>~
BACKUP = re.compile(r"\.bak-[0-9.-]+$|\.\d+\.\d{4}-\d\d-\d\d@[\d:]+~$")


def split_backups(files: dict) -> tuple[dict, dict]:
    """(the files, {original name: [its backup copies' bytes]})."""
    kept, backups = {}, {}
    for name, data in files.items():
        match = BACKUP.search(name)
        if match:
            backups.setdefault(name[:match.start()], []).append(data)
        else:
            kept[name] = data
    return kept, backups


# A user's own files, with entries of their own (quay.io is not mirrored in these tests)
USER_BUILDKITD = """# our build farm
debug = true

[worker.oci]
  max-parallelism = 4

[registry."quay.io"]
  mirrors = ["quay-cache.example:5000"]
"""
USER_REGISTRIES_YAML = """# k3s: our own mirror of quay
mirrors:
    quay.io:
        endpoint:
            - "https://quay-cache.example:5000"
configs:
    "quay-cache.example:5000":
        auth:
            username: ci
            password: their-own-secret
"""


def seed_user_files(paths: ClientPaths, buildkitd: str = USER_BUILDKITD) -> None:
    for path, text in ((paths.buildkit_config, buildkitd), (paths.k3s_registries, USER_REGISTRIES_YAML)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def product_files(config: Path, root: Path) -> dict:
    """What `make docker-mirror-clients --root ROOT` writes under ROOT (no dockerd reloaded)."""
    clients.apply(settings_mod.load(config), ClientPaths.under(root), reload=False)
    return tree(root)


@pytest.fixture
def fleet(tmp_path):
    """Upstreams with images and a pull-through mirror process for docker.io and ghcr.io."""
    tag = f"fleet-{uuid.uuid4().hex[:8]}"
    started = []
    try:
        found = {}
        for key, repo in (("dockerhub", "minio/minio"), ("ghcr", "vllm-project/production-stack/router")):
            upstream = UpstreamRegistry(tmp_path / f"{key}-upstream").start()
            started.append(upstream)
            digest = push_image(upstream.url, repo, tag)
            proxy = ProxyRegistry(tmp_path / f"{key}-mirror", upstream.url).start()
            started.append(proxy)
            found[key] = dict(proxy=proxy, repo=repo, tag=tag, digest=digest)
        config = write_config(tmp_path / ".config", olddefconfig=True,
                              DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                              DOCKER_MIRROR_PORT=found["dockerhub"]["proxy"].port,
                              DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_GHCR_PORT=found["ghcr"]["proxy"].port)
        run_mirror("extra-vars", "--out", str(tmp_path / "extra_vars.yaml"), config=config)
        yield found
    finally:
        for registry in reversed(started):
            registry.stop()


def test_playbook_points_docker_and_containerd_at_the_mirror_once(fleet, tmp_path, docker_client):
    etc = tmp_path / "etc"
    etc.mkdir()
    containerd_config = etc / "config.toml"
    containerd_config.write_text(DEBIAN_CONTAINERD_CONFIG)
    certs = etc / "certs.d"
    hub, ghcr = fleet["dockerhub"], fleet["ghcr"]
    hub_url, ghcr_url = hub["proxy"].url, ghcr["proxy"].url  # http://127.0.0.1:PORT
    minio = f"minio/minio:{hub['tag']}"

    # podman and dockerd are on this host's PATH: the imported play configures both clients
    where = dict(containerd_config=containerd_config, containerd_certs_dir=certs,
                 containers_dir=etc / "containers", docker_hosts_dir=etc / "docker-certs.d")
    with real_daemon_json() as daemon_json:
        first = run_playbook(tmp_path, tmp_path / "extra_vars.yaml", via_make=True, **where)
        assert first["failed"] == 0 and first["changed"] >= 4, first

        # Docker: the mirror first in the real daemon.json, and the real dockerd uses it
        assert client_config.parse_daemon_json(daemon_json.read_bytes(), daemon_json)["registry-mirrors"][0] == hub_url
        assert hub_url + "/" in docker_client.info()["RegistryConfig"]["Mirrors"]
        # containerd: the same files `make docker-mirror-clients` writes, byte for byte
        for registry, url in (("docker.io", hub_url), ("ghcr.io", ghcr_url)):
            assert (certs / registry / "hosts.toml").read_text() == client_text.hosts_toml(registry, url)
        config = tomllib.loads(containerd_config.read_text())
        assert config["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"] == str(certs)
        assert config["plugins"]["io.containerd.grpc.v1.cri"]["cni"]["bin_dir"] == "/usr/lib/cni"
        # the clients of the imported play: the same bytes as make docker-mirror-clients
        made = product_files(tmp_path / ".config", tmp_path / "product")
        assert tree(etc / "containers") == {f"registries.conf.d/{DROP_IN}":
                                            made[f"etc/containers/registries.conf.d/{DROP_IN}"]}
        assert tree(etc / "docker-certs.d") == {f"{registry}/hosts.toml": made[f"etc/docker/certs.d/{registry}/hosts.toml"]
                                                for registry in ("docker.io", "ghcr.io")}

        second = run_playbook(tmp_path, tmp_path / "extra_vars.yaml", via_make=False, **where)
        assert second["failed"] == 0 and second["changed"] == 0, second

        try:
            docker_client.images.pull("minio/minio", tag=hub["tag"])
            digests = {d.split("@", 1)[1] for d in docker_client.images.get(minio).attrs["RepoDigests"]}
            assert digests == {hub["digest"]}
            assert hub["proxy"].cached(hub["repo"], hub["tag"])
        finally:
            try:
                docker_client.images.remove(minio, force=True)
            except Exception:
                pass

    namespace = f"dmfleet-{uuid.uuid4().hex[:8]}"
    ref = f"ghcr.io/{ghcr['repo']}:{ghcr['tag']}"
    try:
        pulled = ctr(namespace, "image", "pull", "--hosts-dir", str(certs), ref, check=False)
        assert pulled.returncode == 0, pulled.stderr
        assert ghcr["proxy"].cached(ghcr["repo"], ghcr["tag"])
    finally:
        ctr_remove_namespace(namespace)


def test_playbook_hands_out_the_generated_ca_and_the_client_credential(tmp_path):
    """Generated TLS and a client user: the CA where dockerd, containerd, Docker's containerd
    store and containers/image read it, the Authorization header in 0600 hosts.toml files:
    byte for byte what `make docker-mirror-clients --root` writes under the same root;
    nothing of it on the real host (every path points into the test's own tree)."""
    from mirror.host import credential, tls

    users = tmp_path / "htpasswd"
    users.write_text(f"alice:{credential._bcrypt('wonder land')}\n")
    config = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                          DOCKER_MIRROR_PORT=15300, DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_TLS=True,
                          DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(users),
                          DOCKER_MIRROR_CLIENT_USERNAME="alice", DOCKER_MIRROR_CLIENT_PASSWORD="wonder land")
    loaded = settings_mod.load(config)
    tls.ensure(loaded)
    ca = Path(loaded.tls_ca).read_bytes()
    run_mirror("extra-vars", "--out", str(tmp_path / "extra_vars.yaml"), config=config)
    root = tmp_path / "root"
    paths = ClientPaths.under(root)
    # The product first, under the root the playbook then writes into: the files name
    # paths (the CA of each hosts.toml), so the same root makes the same bytes. The host
    # has BuildKit and k3s (their directories), each with a file of the user's own.
    seed_user_files(paths)
    made, made_backups = split_backups(product_files(config, root))
    shutil.rmtree(root)
    seed_user_files(paths)
    where = dict(docker_daemon_json=paths.daemon_json, docker_pid_file=tmp_path / "no-dockerd.pid",
                 containerd_config=paths.containerd_config, containerd_certs_dir=paths.certs_dir,
                 docker_certs_dir=paths.docker_certs_dir, docker_hosts_dir=paths.docker_hosts_dir,
                 containers_dir=paths.containers_dir, buildkit_config=paths.buildkit_config,
                 k3s_registries=paths.k3s_registries, rke2_registries=paths.rke2_registries)

    output = []
    first = run_playbook(tmp_path, tmp_path / "extra_vars.yaml", via_make=False, output=output, **where)
    assert first["failed"] == 0, first
    assert "wonder land" not in output[0] and "their-own-secret" not in output[0]
    etc = root / "etc"
    header = client_config.basic_authorization(("alice", "wonder land"))
    for registry, port in (("docker.io", 15300), ("ghcr.io", 15301)):
        assert (etc / "docker/certs.d" / f"127.0.0.1:{port}" / "ca.crt").read_bytes() == ca
        assert (etc / "containers/certs.d" / f"127.0.0.1:{port}" / "ca.crt").read_bytes() == ca
        own_ca = etc / "containerd/certs.d" / registry / "docker-mirror-ca.crt"
        assert own_ca.read_bytes() == ca
        hosts = etc / "containerd/certs.d" / registry / "hosts.toml"
        assert hosts.read_text() == client_text.hosts_toml(
            registry, f"https://127.0.0.1:{port}", ca=str(own_ca), authorization=header)
        store = etc / "docker/certs.d" / registry / "hosts.toml"     # Docker 29's containerd store
        assert tomllib.loads(store.read_text())["host"][f"https://127.0.0.1:{port}"]["header"]["Authorization"] == header
        for path in (hosts, store):
            assert path.stat().st_mode & 0o777 == 0o600, path
    drop_in = tomllib.loads((etc / "containers/registries.conf.d" / DROP_IN).read_text())
    assert [r["mirror"] for r in drop_in["registry"]] == [[{"location": "127.0.0.1:15300"}],
                                                          [{"location": "127.0.0.1:15301"}]]
    # Every client file the product writes, the playbook writes with the same bytes, and nothing
    # else (daemon.json and a new containerd config.toml: the same document, in the playbook's
    # own layout and comment).
    wrote, backups = split_backups(tree(root))
    assert set(wrote) == set(made), sorted(set(wrote) ^ set(made))
    # the users' own files: merged, not replaced, a backup of each kept (as the product keeps one)
    user_files = {"etc/buildkit/buildkitd.toml": USER_BUILDKITD,
                  "etc/rancher/k3s/registries.yaml": USER_REGISTRIES_YAML}
    assert backups == made_backups == {name: [text.encode()] for name, text in user_files.items()}
    for name, text in user_files.items():
        assert wrote[name].decode().startswith(text.split("\n", 1)[0]), name
    buildkitd = tomllib.loads(wrote["etc/buildkit/buildkitd.toml"].decode())
    assert buildkitd["debug"] is True and buildkitd["worker"]["oci"]["max-parallelism"] == 4
    assert buildkitd["registry"]["quay.io"] == {"mirrors": ["quay-cache.example:5000"]}
    assert buildkitd["registry"]["ghcr.io"] == {"mirrors": ["127.0.0.1:15301"]}
    assert buildkitd["registry"]["127.0.0.1:15301"] == {"ca": [str(etc / "docker/certs.d/127.0.0.1:15301/ca.crt")]}
    registries = yaml.safe_load(wrote["etc/rancher/k3s/registries.yaml"])
    assert registries["mirrors"]["quay.io"] == {"endpoint": ["https://quay-cache.example:5000"]}
    assert registries["configs"]["quay-cache.example:5000"]["auth"]["password"] == "their-own-secret"
    assert registries["mirrors"]["docker.io"] == {"endpoint": ["https://127.0.0.1:15300"]}
    assert registries["configs"]["127.0.0.1:15300"] == {
        "auth": {"username": "alice", "password": "wonder land"},
        "tls": {"ca_file": str(etc / "docker/certs.d/127.0.0.1:15300/ca.crt")}}
    assert paths.k3s_registries.stat().st_mode & 0o777 == 0o600     # it holds the client password
    assert paths.buildkit_config.stat().st_mode & 0o777 == 0o644
    same_document = {"etc/docker/daemon.json": json.loads, "etc/containerd/config.toml": lambda b: tomllib.loads(b.decode())}
    for name, data in made.items():
        parse = same_document.get(name)
        if parse:
            assert parse(wrote[name]) == parse(data), name
        else:
            assert wrote[name] == data, name
    # daemon.json, config.toml; per mirror 5 files; the drop-in; buildkitd.toml, registries.yaml
    assert len(made) == 2 + 2 * 5 + 1 + 2, sorted(made)
    assert "wonder land" not in (tmp_path / "extra_vars.yaml").read_text() or \
        (tmp_path / "extra_vars.yaml").stat().st_mode & 0o777 == 0o600

    second = run_playbook(tmp_path, tmp_path / "extra_vars.yaml", via_make=False, **where)
    assert second["failed"] == 0 and second["changed"] == 0, second
    assert split_backups(tree(root)) == (wrote, backups)


def test_playbook_leaves_a_file_it_cannot_merge_untouched_and_writes_the_others(tmp_path):
    """An invalid buildkitd.toml: left as it is (no backup either), the reason printed for
    the host, which is not failed; its registries.yaml is still merged, with the bytes
    `make docker-mirror-clients --root` writes from the same start. The imported play alone
    (it runs alone, documented): the other files are the tests above'."""
    config = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                          DOCKER_MIRROR_PORT=15310, DOCKER_MIRROR_QUAY=True)
    run_mirror("extra-vars", "--out", str(tmp_path / "extra_vars.yaml"), config=config)
    broken = USER_BUILDKITD + "[registry\n"
    product_root, root = tmp_path / "product", tmp_path / "root"
    seed_user_files(ClientPaths.under(product_root), buildkitd=broken)
    made, _ = split_backups(product_files(config, product_root))
    paths = ClientPaths.under(root)
    seed_user_files(paths, buildkitd=broken)
    output = []
    recap = run_playbook(tmp_path, tmp_path / "extra_vars.yaml", via_make=False, playbook=MORE_PLAYBOOK,
                         output=output, containers_dir=paths.containers_dir, docker_hosts_dir=paths.docker_hosts_dir,
                         docker_certs_dir=paths.docker_certs_dir, buildkit_config=paths.buildkit_config,
                         k3s_registries=paths.k3s_registries, rke2_registries=paths.rke2_registries)
    assert recap["failed"] == 0, recap
    assert f"{paths.buildkit_config}: not valid TOML" in output[0] and "buildkit not configured on localhost" in output[0]
    assert "ignored=1" in output[0]
    wrote, backups = split_backups(tree(root))
    assert wrote["etc/buildkit/buildkitd.toml"] == made["etc/buildkit/buildkitd.toml"] == broken.encode()
    assert list(backups) == ["etc/rancher/k3s/registries.yaml"]
    assert wrote["etc/rancher/k3s/registries.yaml"] == made["etc/rancher/k3s/registries.yaml"]
    assert yaml.safe_load(wrote["etc/rancher/k3s/registries.yaml"])["mirrors"]["quay.io"] == {
        "endpoint": ["https://quay-cache.example:5000"]}     # the user's own, kept: not ours
    assert "has its own mirrors for quay.io" in output[0]
