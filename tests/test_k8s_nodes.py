"""make docker-mirror-k8s for the nodes: each node's containerd hosts.toml and CRI-O
registries.conf drop-in, from the templates the host's clients command uses, copied
where each runtime reads them, and only for the runtimes the node has."""

import base64
import subprocess
import tomllib

import kubernetes_validate

from mirror.services import k8s_manifests as k8s
from mirror.config import settings as settings_module
from mirror import client_origin
from mirror.client_table import DROP_IN, containers_drop_in
from mirror.client_text import hosts_toml
from mirror.model.client_config import HostMirror
from support.configs import write_config
from support.k8s_manifests import (CREDENTIALS, KUBERNETES, by_kind, documents, htpasswd_file,  # noqa: F401
                                   kubelet_volume, run)


def test_each_node_gets_the_hosts_toml_the_clients_command_writes(tmp_path, capsys):
    config = write_config(tmp_path / ".config", **CREDENTIALS)
    loaded = settings_module.load(config)
    out = tmp_path / "k8s"
    assert run(config, out, "--namespace", "mirrors") == 0
    kinds = by_kind(out)
    data = kinds["ConfigMap"]["docker-mirror-containerd-hosts"]["data"]
    daemonset = kinds["DaemonSet"]["docker-mirror-containerd-hosts"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in daemonset["volumes"]}
    assert set(volumes) == {"hosts", "registries-conf", "node-etc"}
    volume = volumes["hosts"]
    assert volume["configMap"]["name"] == "docker-mirror-containerd-hosts"
    assert volumes["registries-conf"]["configMap"]["name"] == "docker-mirror-registries-conf"
    items = {item["key"]: item["path"] for item in volume["configMap"]["items"]}
    # The node's /etc as it is: never DirectoryOrCreate, which would make a runtime's directory
    # on a node that does not run it (and the copy decides by those directories).
    assert volumes["node-etc"]["hostPath"] == {"path": "/etc", "type": "Directory"}
    # the host's template, its header naming the DaemonSet that put it on the node
    origin = client_origin.cluster("docker-mirror-containerd-hosts", "mirrors")
    for upstream in loaded.upstreams:
        url = f"http://docker-mirror-{upstream.key}.mirrors.svc.cluster.local:{upstream.port}"
        assert data[f"{upstream.key}.toml"] == hosts_toml(upstream.registry, url, origin=origin)
        assert items[f"{upstream.key}.toml"] == f"{upstream.registry}/hosts.toml"
    assert items["custom.toml"] == "registry.example.com:5443/hosts.toml"
    assert set(data) == {f"{u.key}.toml" for u in loaded.upstreams}      # no CA without TLS


def test_each_crio_node_gets_the_registries_conf_drop_in_the_clients_command_writes(tmp_path, capsys):
    config = write_config(tmp_path / ".config", **{**CREDENTIALS, "DOCKER_MIRROR_CUSTOM_REMOTE_URL": "http://10.1.2.3:5000",
                                                   "DOCKER_MIRROR_CUSTOM_REGISTRY": "10.1.2.3:5000"})
    loaded = settings_module.load(config)
    out = tmp_path / "k8s"
    assert run(config, out, "--namespace", "mirrors") == 0
    kinds = by_kind(out)
    configmap = kinds["ConfigMap"]["docker-mirror-registries-conf"]
    assert configmap["metadata"]["namespace"] == "mirrors"
    text = configmap["data"]["registries.conf"]
    services = {u.registry: f"docker-mirror-{u.key}.mirrors.svc.cluster.local:{u.port}" for u in loaded.upstreams}
    # The host's template and model, each mirror named by its Service.
    assert text == containers_drop_in(tuple(
        HostMirror(u.registry, "", f"http://{services[u.registry]}", services[u.registry], False,
                   u.registry == "10.1.2.3:5000") for u in loaded.upstreams),
        client_origin.cluster("docker-mirror-containerd-hosts", "mirrors"))
    # containers-registries.conf(5), v2: [[registry]] tables with a prefix and [[registry.mirror]] locations.
    doc = tomllib.loads(text)
    assert set(doc) == {"registry"}
    assert [r["prefix"] for r in doc["registry"]] == [u.registry for u in loaded.upstreams]
    for registry in doc["registry"]:
        assert registry["location"] == registry["prefix"]
        assert registry.get("insecure", False) is (registry["prefix"] == "10.1.2.3:5000")   # an http:// upstream
        (mirror,) = registry["mirror"]
        assert mirror == {"location": services[registry["prefix"]], "insecure": True}   # plain HTTP Services
        assert set(registry) <= {"prefix", "location", "insecure", "mirror"}
    spec = kinds["DaemonSet"]["docker-mirror-containerd-hosts"]["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "registries-conf"]
    assert volume["configMap"]["items"] == [{"key": "registries.conf", "path": f"registries.conf.d/{DROP_IN}"}]
    assert set(configmap["data"]) == {"registries.conf"}


def run_init(tmp_path, kinds, node_etc, secret=False):
    """The DaemonSet's init container's command, run by this host's sh and cp on the layout
    the kubelet gives its ConfigMap and Secret volumes, and on `node_etc` as the node's /etc."""
    spec = kinds["DaemonSet"]["docker-mirror-containerd-hosts"]["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    assert init["command"][:2] == ["sh", "-c"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    script = init["command"][2]
    # the longest mount path first: none is then replaced inside another
    for mount in sorted(init["volumeMounts"], key=lambda m: -len(m["mountPath"])):
        volume = volumes[mount["name"]]
        if "hostPath" in volume:
            assert volume["hostPath"]["path"] == "/etc" and not mount.get("readOnly")
            source = node_etc
        else:
            assert mount["readOnly"]
            source = tmp_path / f"volume-{mount['name']}"   # made once, shared by the nodes of a test
            if source.exists():
                pass
            elif "secret" in volume:
                data = {k: base64.b64decode(v).decode()
                        for k, v in kinds["Secret"][volume["secret"]["secretName"]]["data"].items()}
                kubelet_volume(source, volume["secret"]["items"], data, volume["secret"]["defaultMode"])
            else:
                data = kinds["ConfigMap"][volume["configMap"]["name"]]["data"]
                kubelet_volume(source, volume["configMap"]["items"], data)
        script = script.replace(mount["mountPath"], str(source))
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    subprocess.run(["sh", "-c", script], check=True, timeout=30)   # the pod's next start: same result


def files_under(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_the_daemonsets_copy_puts_each_file_where_the_nodes_runtime_reads_it(tmp_path, capsys):
    """A containerd node gets the hosts.toml files and no CRI-O file, a CRI-O node the drop-in
    and no /etc/containerd; files of others are left alone on both."""
    config = write_config(tmp_path / ".config", **CREDENTIALS)
    out = tmp_path / "k8s"
    assert run(config, out) == 0
    kinds = by_kind(out)
    hosts = kinds["ConfigMap"]["docker-mirror-containerd-hosts"]["data"]
    drop_in = kinds["ConfigMap"]["docker-mirror-registries-conf"]["data"]["registries.conf"]
    spec = kinds["DaemonSet"]["docker-mirror-containerd-hosts"]["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "hosts"]

    containerd_node = tmp_path / "containerd-node" / "etc"
    certs_d = containerd_node / "containerd" / "certs.d"
    (certs_d / "quay.io").mkdir(parents=True)
    (certs_d / "quay.io" / "hosts.toml").write_text("# someone else's\n")   # not mirrored: left alone
    (containerd_node / "containerd" / "config.toml").write_text("version = 2\n")
    crio_node = tmp_path / "crio-node" / "etc"
    (crio_node / "containers" / "registries.conf.d").mkdir(parents=True)
    (crio_node / "containers" / "registries.conf").write_text('unqualified-search-registries = ["docker.io"]\n')
    (crio_node / "containers" / "registries.conf.d" / "000-shortnames.conf").write_text("[aliases]\n")
    (crio_node / "crio").mkdir()
    bare_node = tmp_path / "bare-node" / "etc"       # neither runtime's directory: nothing written
    bare_node.mkdir(parents=True)
    for node in (containerd_node, crio_node, bare_node):
        run_init(tmp_path, kinds, node)

    for item in volume["configMap"]["items"]:
        copied = certs_d / item["path"]
        assert copied.is_file() and not copied.is_symlink() and not copied.parent.is_symlink()
        assert copied.read_text() == hosts[item["key"]]
    assert (certs_d / "quay.io" / "hosts.toml").read_text() == "# someone else's\n"
    assert not list(certs_d.glob("..*"))       # the kubelet's own entries stay behind
    assert files_under(containerd_node) == sorted(
        [f"containerd/certs.d/{item['path']}" for item in volume["configMap"]["items"]]
        + ["containerd/certs.d/quay.io/hosts.toml", "containerd/config.toml"])

    copied = crio_node / "containers" / "registries.conf.d" / DROP_IN
    assert copied.read_text() == drop_in and not copied.is_symlink()
    assert files_under(crio_node) == ["containers/registries.conf", "containers/registries.conf.d/000-shortnames.conf",
                                      f"containers/registries.conf.d/{DROP_IN}"]
    assert not (crio_node / "containerd").exists() and not list((crio_node / "containers").glob("..*"))
    assert list(bare_node.iterdir()) == []


def test_with_tls_each_runtime_of_a_node_is_given_the_mirrors_ca(tmp_path, capsys):
    ca = "-----BEGIN CERTIFICATE-----\nMIIca-of-the-mirror\n-----END CERTIFICATE-----\n"
    (tmp_path / "ca.pem").write_text(ca)
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text(f"# {name}\n")
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_TLS=True,
                          DOCKER_MIRROR_TLS_GIVEN=True, DOCKER_MIRROR_TLS_CERTIFICATE=str(tmp_path / "cert.pem"),
                          DOCKER_MIRROR_TLS_KEY=str(tmp_path / "key.pem"),
                          DOCKER_MIRROR_TLS_CA_CERTIFICATE=str(tmp_path / "ca.pem"))
    loaded = settings_module.load(config)
    out = tmp_path / "k8s"
    assert run(config, out) == 0
    kinds = by_kind(out)
    for docs in documents(out).values():
        for doc in docs:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    node = tmp_path / "node" / "etc"
    (node / "containerd").mkdir(parents=True)
    (node / "containers").mkdir()
    run_init(tmp_path, kinds, node)
    services = {u.registry: f"docker-mirror-{u.key}.docker-mirror.svc.cluster.local:{u.port}"
                for u in loaded.upstreams}
    expected = ["containerd/certs.d/docker.io/docker-mirror-ca.crt", "containerd/certs.d/docker.io/hosts.toml",
                "containerd/certs.d/ghcr.io/docker-mirror-ca.crt", "containerd/certs.d/ghcr.io/hosts.toml",
                f"containers/certs.d/{services['docker.io']}/ca.crt", f"containers/certs.d/{services['ghcr.io']}/ca.crt",
                f"containers/registries.conf.d/{DROP_IN}"]
    assert files_under(node) == sorted(expected)
    for path in expected:
        if path.endswith(".crt"):
            assert (node / path).read_text() == ca, path
    for upstream in loaded.upstreams:
        hosts = (node / "containerd/certs.d" / upstream.registry / "hosts.toml").read_text()
        own_ca = f"/etc/containerd/certs.d/{upstream.registry}/docker-mirror-ca.crt"   # as the node sees it
        assert hosts == hosts_toml(upstream.registry, f"https://{services[upstream.registry]}", ca=own_ca,
                                   origin=client_origin.cluster("docker-mirror-containerd-hosts", "docker-mirror"))
    drop_in = tomllib.loads((node / "containers/registries.conf.d" / DROP_IN).read_text())
    for registry in drop_in["registry"]:
        # HTTPS: no insecure; containers/image finds the CA in certs.d/HOST:PORT/ by the mirror's location
        assert registry["mirror"] == [{"location": services[registry["prefix"]]}]


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
        assert text == hosts_toml(upstream.registry, url, authorization=header,
                                  origin=client_origin.cluster("docker-mirror-containerd-hosts", "docker-mirror"))
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
    (volume,) = [v for v in spec["volumes"] if v["name"] == "hosts"]
    node = tmp_path / "node" / "etc"
    certs_d = node / "containerd" / "certs.d"
    for item in volume["secret"]["items"]:
        old = certs_d / item["path"]        # what the earlier render put on the node
        old.parent.mkdir(parents=True, exist_ok=True)
        old.write_text("# an earlier hosts.toml, no secret in it\n")
        old.chmod(0o644)
    run_init(tmp_path, kinds, node)
    for item in volume["secret"]["items"]:
        copied = certs_d / item["path"]
        assert copied.read_text() == data[item["key"]]
        assert copied.stat().st_mode & 0o077 == 0, (item["path"], oct(copied.stat().st_mode))
