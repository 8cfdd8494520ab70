"""Tiny images of this host's HAProxy and Redis, built offline like the registry's.

No image can be pulled on an air-gapped host (nor here), but Debian ships
`haproxy` and `redis-server`: each image is the binary plus the shared
libraries `ldd` lists, in a FROM-scratch root tree, imported into the engine.
HAProxy runs without user/group/chroot (templates/haproxy.cfg.j2), so the
tree needs no account beyond root; glibc's dlopen of libgcc_s (thread exit)
is covered because both binaries link it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass

import docker.errors

from ..errors import DockerError, RegistryImageError
from .client import short
from .registry_image import _import_failure, _read, _shared_libraries, rootfs_tar

REPO = "docker-mirror"
LABEL = "io.docker-mirror.built-offline"
CONFIG_DIR = "/etc/docker-mirror"     # where the containers read their config


@dataclass(frozen=True)
class Tool:
    name: str                  # haproxy, redis
    package: str               # the Debian package that has the binaries
    binaries: tuple[str, ...]  # host paths, copied to the same paths; the first is the entrypoint
    config: str                # the config file's name under CONFIG_DIR
    args: tuple[str, ...]      # after the entrypoint, with {config} for the config's path

    @property
    def config_path(self) -> str:
        return f"{CONFIG_DIR}/{self.config}"

    @property
    def command(self) -> list[str]:
        return [self.binaries[0], *(a.format(config=self.config_path) for a in self.args)]


# -db: stay in the foreground, log to stdout (the container's log).
HAPROXY = Tool("haproxy", "haproxy", ("/usr/sbin/haproxy",), "haproxy.cfg", ("-db", "-f", "{config}"))
# redis-cli rides along for `docker exec` checks (PING, FLUSHDB).
REDIS = Tool("redis", "redis-server", ("/usr/bin/redis-server", "/usr/bin/redis-cli"), "redis.conf",
             ("{config}",))


@dataclass(frozen=True)
class ToolImage:
    ref: str
    image_id: str


def _host_binary(path: str) -> str:
    found = path if os.access(path, os.X_OK) else shutil.which(os.path.basename(path))
    return found or ""


def ensure(client, tool: Tool) -> ToolImage:
    """The image of `tool`, built from this host's binaries unless already built from them."""
    sources = []
    for path in tool.binaries:
        source = _host_binary(path)
        if not source:
            raise RegistryImageError(f"cannot build the {tool.name} image: {path} is missing "
                                     f"(`apt-get install {tool.package}` fixes it)")
        sources.append(source)
    digest = hashlib.sha256()
    for source in sources:
        digest.update(_read(source))
    ref = f"{REPO}/{tool.name}:{digest.hexdigest()[:12]}-offline"   # a new binary, a new image
    try:
        return ToolImage(ref, client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as err:
        raise DockerError(f"cannot inspect image {ref}: {short(err)}") from err
    files = {}
    for path, source in zip(tool.binaries, sources):
        files[path.lstrip("/")] = (_read(source), 0o755)
        for lib in _shared_libraries(source):
            files[lib.lstrip("/")] = (_read(lib), 0o755)
    entrypoint = ",".join(f'"{word}"' for word in tool.command)
    changes = [f"ENTRYPOINT [{entrypoint}]", f'LABEL {LABEL}="true"']
    repo, tag = ref.rsplit(":", 1)
    try:
        answer = client.api.import_image_from_data(_tar(files), repository=repo, tag=tag, changes=changes)
    except docker.errors.DockerException as err:
        raise DockerError(f"Docker refused to import {ref}: {short(err)}") from err
    failure = _import_failure(answer)
    if failure:
        raise DockerError(f"Docker refused to import {ref}: {failure}")
    return ToolImage(ref, client.images.get(ref).id)


def _tar(files: dict[str, tuple[bytes, int]]) -> bytes:
    return rootfs_tar(files, {"tmp": 0o1777, CONFIG_DIR.lstrip("/"): 0o755})
