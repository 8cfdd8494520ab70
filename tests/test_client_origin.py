"""The header of the client files: who wrote each and how to take it back, true where
it lands. A host's files (make docker-mirror-clients; the fleet playbook writes the
same bytes) keep the text they always had, byte for byte: clients-undo removes a
file only while it holds the bytes it recorded, so a new header would make it take
files written by an older version for ones the user edited. A Kubernetes node's
files, copied by the DaemonSet of make docker-mirror-k8s, name that DaemonSet: a
node has no make and no checkout."""

import tomllib

from mirror import client_origin
from mirror.client_table import DROP_IN, containers_drop_in
from mirror.client_text import hosts_toml
from mirror.config import settings as settings_module
from mirror.host.client_files import ClientPaths
from mirror.model.client_config import HostMirror
from mirror.services import clients
from support.configs import write_config
from support.k8s_manifests import CREDENTIALS, by_kind, run

# Rendered by the templates before the header became a parameter: the bytes a host's
# clients-undo recorded for files written by earlier versions.
HOST_HOSTS_TOML = """\
# Written by docker-mirror (make docker-mirror-clients or docker-mirror-distribute).
# containerd pulls docker.io images from the mirror first, and from the
# server when the mirror does not answer.
server = "https://registry-1.docker.io"

[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
"""
HOST_DROP_IN = """\
# Written by docker-mirror (make docker-mirror-clients): Podman, Buildah,
# Skopeo and CRI-O (containers/image) pull from the mirror first and from the
# registry itself when the mirror does not answer. A [[registry]] with the
# same prefix in a drop-in read later (a higher number) replaces this one.
# 'make docker-mirror-clients-undo' removes this file.

[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "127.0.0.1:5000"
# the mirror speaks plain HTTP
insecure = true
"""
HOST_HOSTS_TOML_HEADER = "# Written by docker-mirror (make docker-mirror-clients or docker-mirror-distribute).\n"
HOST_DROP_IN_HEADER = HOST_DROP_IN[:HOST_DROP_IN.index("\n[[registry]]")]


def leading_comment(text: str) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))])


def test_a_hosts_files_keep_the_bytes_earlier_versions_wrote():
    assert hosts_toml("docker.io", "http://127.0.0.1:5000") == HOST_HOSTS_TOML
    hub = HostMirror("docker.io", "https://registry-1.docker.io", "http://127.0.0.1:5000", "127.0.0.1:5000")
    assert containers_drop_in((hub,)) == HOST_DROP_IN


def test_the_clients_verb_writes_the_host_header_into_every_file(tmp_path):
    """What `make docker-mirror-clients --root` writes (no dockerd reloaded): each
    hosts.toml and the drop-in begin with the host's header, as before."""
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                          DOCKER_MIRROR_GHCR=True)
    root = tmp_path / "root"
    paths = ClientPaths.under(root)
    paths.containers_dir.mkdir(parents=True)      # containers/image "installed": its drop-in is written
    clients.apply(settings_module.load(config), paths, reload=False)
    written = [*paths.certs_dir.glob("*/hosts.toml"), *paths.docker_hosts_dir.glob("*/hosts.toml")]
    assert len(written) == 4, written     # docker.io and ghcr.io, for containerd and Docker's store
    for path in written:
        assert path.read_text().startswith(HOST_HOSTS_TOML_HEADER), path
    drop_in = (paths.containers_dir / "registries.conf.d" / DROP_IN).read_text()
    assert drop_in.startswith(HOST_DROP_IN_HEADER + "\n")


def test_a_nodes_files_name_the_daemonset_that_copied_them(tmp_path, capsys):
    config = write_config(tmp_path / ".config", **CREDENTIALS, DOCKER_MIRROR_CONTAINER_PREFIX="edge")
    out = tmp_path / "k8s"
    assert run(config, out, "--namespace", "pulls") == 0
    kinds = by_kind(out)
    daemonset = kinds["DaemonSet"]["edge-containerd-hosts"]     # the object the header names
    assert daemonset["metadata"]["namespace"] == "pulls"
    files = {**kinds["ConfigMap"]["edge-containerd-hosts"]["data"],
             **kinds["ConfigMap"]["edge-registries-conf"]["data"]}
    assert len(files) == 3 + 1, sorted(files)    # hosts.toml of docker.io, ghcr.io, the custom; the drop-in
    for key, text in files.items():
        header = leading_comment(text)
        assert header.startswith("# Written by the docker-mirror DaemonSet edge-containerd-hosts\n"
                                 "# (namespace pulls)"), (key, header)
        assert "Deleting the DaemonSet leaves this file on the node: delete the file\n" in header, key
        assert "make docker-mirror-clients" not in text and "docker-mirror-distribute" not in text, key
        tomllib.loads(text)      # still a file the runtime reads


def test_a_cluster_header_changes_comment_lines_only():
    """Every line the origin adds is a comment, whatever the names' length: the settings
    the runtime reads are the host's, to the byte."""
    origin = client_origin.cluster("a" * 52 + "-containerd-hosts", "n" * 63)
    hub = (HostMirror("docker.io", "", "http://m:5000", "m:5000"),)
    pairs = ((hosts_toml("docker.io", "http://m:5000"), hosts_toml("docker.io", "http://m:5000", origin=origin)),
             (containers_drop_in(hub), containers_drop_in(hub, origin)))
    for host, node in pairs:
        assert leading_comment(node) != leading_comment(host)
        assert node[len(leading_comment(node)):] == host[len(leading_comment(host)):]
        assert "a" * 52 + "-containerd-hosts" in leading_comment(node) and "n" * 63 in leading_comment(node)
