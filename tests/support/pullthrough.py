"""Pull-through registry processes, and the host's real daemon.json put back after a test.

A ProxyRegistry is the registry engine built here (support.engine) in proxy
mode, in front of an UpstreamRegistry on loopback: what `make docker-mirror`
runs in a container, as a plain process, so tests of the clients need no
container and can stop and restart a mirror at will.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
from contextlib import contextmanager
from pathlib import Path

from mirror.engine.client import connect
from mirror.engine.dockerd import active_mirrors, reload_docker
from mirror.host.client_files import ClientPaths
from mirror.model import client_config
from support.engine import mirror_binary
from support.upstream import UpstreamRegistry

REAL_DAEMON_JSON = Path("/etc/docker/daemon.json")
REAL_DOCKER_PID = Path("/var/run/docker.pid")
CONTAINERD_SOCKET = "/var/run/docker/containerd/containerd.sock"
# Serialises this suite's own edits of the host's daemon.json (pytest -n, two checkouts).
DAEMON_JSON_LOCK = Path("/run/lock/docker-mirror-tests-daemon-json.lock")

# Debian 12's /etc/containerd/config.toml, as the containerd package ships it.
DEBIAN_CONTAINERD_CONFIG = """\
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
"""


class ProxyRegistry(UpstreamRegistry):
    """A pull-through cache of `remote_url` on 127.0.0.1, its cache in `.storage`."""

    def __init__(self, root, remote_url: str, port: int | None = None, binary: str | None = None):
        super().__init__(root, port, binary=binary or mirror_binary())
        self.remote_url = remote_url

    def _write_config(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps({  # JSON is valid YAML
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": "proxy-test-secret"},
            "proxy": {"remoteurl": self.remote_url},
        }, indent=2))

    def cached(self, repository: str, tag: str) -> bool:
        """True when the proxy stored `repository:tag` (it went through this mirror)."""
        tags = self.storage / "docker/registry/v2/repositories" / repository / "_manifests/tags"
        return (tags / tag / "current/link").is_file()

    def cached_blobs(self) -> set[str]:
        blobs = self.storage / "docker/registry/v2/blobs/sha256"
        return {f"sha256:{p.name}" for p in blobs.glob("*/*") if (p / "data").is_file()}


def ctr(namespace: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    """ctr on the engine's own containerd, in `namespace` (each test its own)."""
    return subprocess.run(["ctr", "--address", CONTAINERD_SOCKET, "--namespace", namespace, *args],
                          capture_output=True, text=True, timeout=60, check=check)


def ctr_remove_namespace(namespace: str) -> None:
    """Remove a test's images and then its namespace (best effort: cleanup only)."""
    for ref in ctr(namespace, "image", "ls", "-q", check=False).stdout.split():
        # --sync: wait for the content to be collected, or the namespace is not empty yet
        ctr(namespace, "image", "rm", "--sync", ref, check=False)
    ctr(namespace, "namespace", "rm", namespace, check=False)


@contextmanager
def real_daemon_json():
    """The host's /etc/docker/daemon.json, put back byte for byte afterwards, whatever
    the test did, and dockerd reloaded so it drops mirrors the test left in it.

    dockerd keeps its old registry-mirrors on reload when the key is absent
    from the file, so it is first reloaded with the keys explicitly empty.
    """
    DAEMON_JSON_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(DAEMON_JSON_LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = REAL_DAEMON_JSON.read_bytes() if REAL_DAEMON_JSON.exists() else None
        original = client_config.parse_daemon_json(before, REAL_DAEMON_JSON)
        baseline = set(active_mirrors(connect()))
        backups = set(REAL_DAEMON_JSON.parent.glob(REAL_DAEMON_JSON.name + ".*"))
        try:
            yield REAL_DAEMON_JSON
        finally:
            now = REAL_DAEMON_JSON.read_bytes() if REAL_DAEMON_JSON.exists() else None
            left = set(active_mirrors(connect())) - baseline
            if now != before or left:
                explicit = {client_config.REGISTRY_MIRRORS: [], client_config.INSECURE_REGISTRIES: [], **original}
                REAL_DAEMON_JSON.write_bytes(client_config.dump_daemon_json(explicit))
                reload_docker(ClientPaths(), connect, absent=left)
                if before is None:
                    REAL_DAEMON_JSON.unlink()
                else:
                    REAL_DAEMON_JSON.write_bytes(before)
            # backups the code under test made of the host's file (ours: .bak-TIME,
            # Ansible's: .PID.TIME~)
            for made in set(REAL_DAEMON_JSON.parent.glob(REAL_DAEMON_JSON.name + ".*")) - backups:
                made.unlink()
