"""Which storage drivers a registry image has, checked before a mirror starts on it.

distribution registers each storage driver from a package of its own, and
builds may leave some out: Debian's docker-registry 2.8.2+ds1 (what the
offline image wraps) has filesystem, inmemory, s3 and swift, but neither
azure nor gcs nor oss. A config naming a missing driver makes the registry
panic at start ("StorageDriver not registered: azure") and the container
crash-loop, so setup refuses it first and says what to do instead.

Only images made here are known, by the label they get when made
(registry_image.build_offline_image): Debian's binary wrapped (no azure),
and the engine built here from distribution's source (mirror.engine.build:
azure left in). The official images have every driver, and any other image
is trusted as the user chose it.
"""

from __future__ import annotations

import re
import shutil

import docker.errors

from ..errors import DockerError, RegistryImageError
from .build import KEY_LABEL as ENGINE_KEY_LABEL
from .client import short
from .registry_image_ref import RegistryImage

# Debian's docker-registry package installs the host's registry binary here.
HOST_REGISTRY_BINARY = "/usr/bin/docker-registry"

LABEL = "io.docker-mirror.storage-drivers"
# Driver package directory -> the name a config gives it (distribution 2.x, 3.x).
_PACKAGES = {"filesystem": "filesystem", "inmemory": "inmemory", "s3-aws": "s3", "s3": "s3",
             "azure": "azure", "gcs": "gcs", "oss": "oss", "swift": "swift"}
# Go binaries name every package they hold by its import path.
_PACKAGE_PATH = re.compile(rb"/registry/storage/driver/([a-z0-9-]+)[./]")


def in_binary(data: bytes) -> frozenset[str]:
    """The storage drivers a registry binary holds, from its package paths."""
    return frozenset(_PACKAGES[name.decode()] for name in set(_PACKAGE_PATH.findall(data))
                     if name.decode() in _PACKAGES)


def offline_binary() -> str:
    """The registry binary an offline image is built from."""
    return shutil.which("docker-registry") or HOST_REGISTRY_BINARY


def of_binary(path: str) -> frozenset[str]:
    with open(path, "rb") as f:
        return in_binary(f.read())


def label_value(drivers: frozenset[str]) -> str:
    return ",".join(sorted(drivers))


def of_image(image: RegistryImage, labels: dict, binary: str) -> frozenset[str] | None:
    """The drivers of an image, or None when not known (trusted).

    An offline image records them in a label when it is built; one built
    before the label existed came from this host's binary, which is read.
    """
    if LABEL in labels:
        return frozenset(filter(None, labels[LABEL].split(",")))
    if not image.built_offline:
        return None
    try:
        return of_binary(binary)
    except OSError:
        return None


def require(client, image: RegistryImage, backend: str, binary: str | None = None) -> None:
    """Refuse to start mirrors on an image whose registry lacks the storage backend's driver."""
    if backend == "filesystem":
        return  # every build has its default driver: no image inspect, no 20 MB binary read
    binary = binary or offline_binary()
    try:
        labels = client.images.get(image.image_id).labels or {}
    except docker.errors.DockerException as err:
        raise DockerError(f"cannot inspect image {image.ref}: {short(err)}") from err
    drivers = of_image(image, labels, binary)
    if drivers is None or backend in drivers:
        return
    if ENGINE_KEY_LABEL in labels:
        origin = ", the registry engine built here,"
    else:
        origin = f", built offline from {binary}," if image.built_offline else ""
    raise RegistryImageError(
        f"the registry image {image.ref}{origin} has no {backend} storage driver "
        f"(it has {', '.join(sorted(drivers)) or 'none'}): its registry would panic at start "
        f"with \"StorageDriver not registered: {backend}\". Set "
        f"CONFIG_DOCKER_MIRROR_REGISTRY_BUILT=y (the engine built here from distribution's source "
        f"has it), or CONFIG_DOCKER_MIRROR_REGISTRY_IMAGE to an image that has it (the official "
        f"registry:2 has every driver; where it cannot be pulled, `docker save` it on a host "
        f"that can and `docker load` it here), or choose another storage backend")
