"""make docker-mirror-k8s for the nodes: each node's containerd hosts.toml, from the
template the host's clients command uses, copied where containerd reads it."""

import base64
import subprocess
import tomllib

import kubernetes_validate

from mirror.services import k8s_manifests as k8s
from mirror.config import settings as settings_module
from mirror.client_text import hosts_toml
from support.configs import write_config
from support.k8s_manifests import (CREDENTIALS, KUBERNETES, by_kind, documents, htpasswd_file,  # noqa: F401
                                   run)


def kubelet_volume(hosts, items, data, mode=None):
    """The layout the kubelet gives a ConfigMap or Secret volume with items: the files in a
    timestamped directory, behind a ..data link and one link per top-level entry."""
    timestamped = hosts / "..2026_11_24_06_00_00.000000001"
    for item in items:
        file = timestamped / item["path"]
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(data[item["key"]])
        if mode is not None:
            file.chmod(mode)
    (hosts / "..data").symlink_to(timestamped.name)
    for top in {item["path"].split("/")[0] for item in items}:
        (hosts / top).symlink_to(f"..data/{top}")


def test_each_node_gets_the_hosts_toml_the_clients_command_writes(tmp_path, capsys):
    config = write_config(tmp_path / ".config", **CREDENTIALS)
    loaded = settings_module.load(config)
    out = tmp_path / "k8s"
    assert run(config, out, "--namespace", "mirrors") == 0
    kinds = by_kind(out)
    data = kinds["ConfigMap"]["docker-mirror-containerd-hosts"]["data"]
    daemonset = kinds["DaemonSet"]["docker-mirror-containerd-hosts"]["spec"]["template"]["spec"]
    (volume,) = [v for v in daemonset["volumes"] if "configMap" in v]
    items = {item["key"]: item["path"] for item in volume["configMap"]["items"]}
    (host_path,) = [v["hostPath"]["path"] for v in daemonset["volumes"] if "hostPath" in v]
    assert host_path == "/etc/containerd/certs.d"
    for upstream in loaded.upstreams:
        url = f"http://docker-mirror-{upstream.key}.mirrors.svc.cluster.local:{upstream.port}"
        assert data[f"{upstream.key}.toml"] == hosts_toml(upstream.registry, url)
        assert items[f"{upstream.key}.toml"] == f"{upstream.registry}/hosts.toml"
    assert items["custom.toml"] == "registry.example.com:5443/hosts.toml"


def test_the_daemonsets_copy_puts_each_hosts_toml_where_containerd_reads_it(tmp_path, capsys):
    """The init container's command, run by this host's sh and cp on the layout the
    kubelet gives a ConfigMap volume with items (files behind ..data symbolic links)."""
    config = write_config(tmp_path / ".config", **CREDENTIALS)
    out = tmp_path / "k8s"
    assert run(config, out) == 0
    kinds = by_kind(out)
    data = kinds["ConfigMap"]["docker-mirror-containerd-hosts"]["data"]
    spec = kinds["DaemonSet"]["docker-mirror-containerd-hosts"]["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    (volume,) = [v for v in spec["volumes"] if "configMap" in v]
    hosts, certs_d = tmp_path / "volume", tmp_path / "node-certs.d"
    kubelet_volume(hosts, volume["configMap"]["items"], data)
    (certs_d / "quay.io").mkdir(parents=True)
    (certs_d / "quay.io" / "hosts.toml").write_text("# someone else's\n")   # not mirrored: left alone
    command = init["command"]
    assert command[:2] == ["sh", "-c"]
    script = command[2].replace(mounts["hosts"], str(hosts)).replace(mounts["certs-d"], str(certs_d))
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    subprocess.run(["sh", "-c", script], check=True, timeout=30)   # the pod's next start: same result
    for item in volume["configMap"]["items"]:
        copied = certs_d / item["path"]
        assert copied.is_file() and not copied.is_symlink() and not copied.parent.is_symlink()
        assert copied.read_text() == data[item["key"]]
    assert (certs_d / "quay.io" / "hosts.toml").read_text() == "# someone else's\n"
    assert not list(certs_d.glob("..*"))       # the kubelet's own entries stay behind
    assert sorted(p.relative_to(certs_d).as_posix() for p in certs_d.rglob("*") if p.is_file()) == sorted(
        [item["path"] for item in volume["configMap"]["items"]] + ["quay.io/hosts.toml"])


def test_behind_htpasswd_the_nodes_sign_in_and_their_hosts_toml_is_a_secret(tmp_path, htpasswd_file, capsys):
    config = write_config(tmp_path / ".config", **CREDENTIALS, DOCKER_MIRROR_HTPASSWD=True,
                          DOCKER_MIRROR_HTPASSWD_PATH=str(htpasswd_file),
                          DOCKER_MIRROR_CLIENT_USERNAME="alice", DOCKER_MIRROR_CLIENT_PASSWORD="alice-password")
    loaded = settings_module.load(config)
    out = tmp_path / "k8s"
    assert run(config, out) == 0
    printed = capsys.readouterr()
    for docs in documents(out).values():
        for doc in docs:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    kinds = by_kind(out)
    assert "docker-mirror-containerd-hosts" not in kinds["ConfigMap"]
    hosts = {key: base64.b64decode(value).decode()
             for key, value in kinds["Secret"]["docker-mirror-containerd-hosts"]["data"].items()}
    header = "Basic " + base64.b64encode(b"alice:alice-password").decode()
    for upstream in loaded.upstreams:
        url = f"http://docker-mirror-{upstream.key}.docker-mirror.svc.cluster.local:{upstream.port}"
        text = hosts[f"{upstream.key}.toml"]
        assert text == hosts_toml(upstream.registry, url, authorization=header)
        assert tomllib.loads(text)["host"][url]["header"]["Authorization"] == header
    (volume,) = [v for v in kinds["DaemonSet"]["docker-mirror-containerd-hosts"]["spec"]["template"]["spec"]["volumes"]
                 if v["name"] == "hosts"]
    assert volume["secret"]["secretName"] == "docker-mirror-containerd-hosts" and "configMap" not in volume
    for path in out.iterdir():
        if path.name != k8s.SECRET_FILE:
            assert "alice-password" not in path.read_text() and header not in path.read_text()
            assert base64.b64encode(header.encode()).decode() not in path.read_text()
    assert "alice-password" not in printed.out + printed.err


def test_behind_htpasswd_the_copy_leaves_no_hosts_toml_readable_by_others(tmp_path, htpasswd_file, capsys):
    """A node's hosts.toml from an earlier render without a client user is 0644; cp keeps
    an existing file's mode, so the copy of the Secret's files must close it itself."""
    config = write_config(tmp_path / ".config", **CREDENTIALS, DOCKER_MIRROR_HTPASSWD=True,
                          DOCKER_MIRROR_HTPASSWD_PATH=str(htpasswd_file),
                          DOCKER_MIRROR_CLIENT_USERNAME="alice", DOCKER_MIRROR_CLIENT_PASSWORD="alice-password")
    out = tmp_path / "k8s"
    assert run(config, out) == 0
    kinds = by_kind(out)
    data = {key: base64.b64decode(value).decode()
            for key, value in kinds["Secret"]["docker-mirror-containerd-hosts"]["data"].items()}
    spec = kinds["DaemonSet"]["docker-mirror-containerd-hosts"]["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    (volume,) = [v for v in spec["volumes"] if v["name"] == "hosts"]
    hosts, certs_d = tmp_path / "volume", tmp_path / "node-certs.d"
    kubelet_volume(hosts, volume["secret"]["items"], data, volume["secret"]["defaultMode"])
    for item in volume["secret"]["items"]:
        old = certs_d / item["path"]        # what the earlier render put on the node
        old.parent.mkdir(parents=True, exist_ok=True)
        old.write_text("# an earlier hosts.toml, no secret in it\n")
        old.chmod(0o644)
    script = init["command"][2].replace(mounts["hosts"], str(hosts)).replace(mounts["certs-d"], str(certs_d))
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    for item in volume["secret"]["items"]:
        copied = certs_d / item["path"]
        assert copied.read_text() == data[item["key"]]
        assert copied.stat().st_mode & 0o077 == 0, (item["path"], oct(copied.stat().st_mode))
