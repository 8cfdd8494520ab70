"""A throwaway checkout of the product: a copy of what `python3 -m mirror` needs, in a temp dir.

Runs the CLI from that copy (cwd = the copy, so `-m mirror` imports the copy,
and the keeper it starts runs from there too) with its own .config, prefix
and ports. Deleting the copy is what a user does with `rm -rf` on a tree
without `make docker-mirror-remove`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from mirror.config.kconfig import ROOT
from support.configs import QUIET_PROBES, write_config
from support.upstream import free_port

# What the CLI reads at run time: the package, the Kconfig tree (defaults), the
# templates, and the patches (they name the registry engine's build).
NEEDED = ("Kconfig", "kconfig", "mirror", "templates", "patches", "defconfigs")


class Checkout:
    def __init__(self, directory: Path, hub_url: str, *, prefix: str | None = None, port: int | None = None,
                 mirror_dir: Path | None = None, **values):
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        for name in NEEDED:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, directory / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, directory / name)
        self.prefix = prefix or f"dmtest-{uuid.uuid4().hex[:8]}"
        self.port = port or free_port()
        self.root = mirror_dir or directory / "mirror-data"
        self.config = directory / ".config"
        self.values = dict(DOCKER_MIRROR_PATH=str(self.root), DOCKER_MIRROR_PORT=self.port,
                           DOCKER_MIRROR_CONTAINER_PREFIX=self.prefix,
                           DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=hub_url, DOCKER_MIRROR_REFRESH=False,
                           DOCKER_MIRROR_IMAGE_MINIO=False, DOCKER_MIRROR_IMAGE_MILVUS=False,
                           DOCKER_MIRROR_IMAGE_REGISTRY=False, **values)
        write_config(self.config, olddefconfig=True, **self.values)

    def run(self, *args, check: bool = True, timeout: float = 90) -> subprocess.CompletedProcess:
        env = {**os.environ, **QUIET_PROBES}
        env.pop("PYTHONPATH", None)   # the copy's package, not the tree pytest runs from
        result = subprocess.run([sys.executable, "-m", "mirror", "--config", str(self.config), *args],
                                cwd=self.dir, env=env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"mirror {' '.join(args)} in {self.dir} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cleanup(self, client) -> None:
        """What a failed test left behind: the product's way out, then the containers by name."""
        if self.config.exists():
            self.run("remove", check=False)
        for container in client.containers.list(all=True, filters={"name": self.prefix}):
            if container.name.startswith(f"{self.prefix}-"):
                container.remove(force=True, v=True)
