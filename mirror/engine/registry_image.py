"""The registry image the mirror runs: the engine built here, or an image the user chose.

By default (CONFIG_DOCKER_MIRROR_REGISTRY_BUILT) the mirror runs the
registry engine built on this host from distribution's source package with
the product's patches (mirror.engine.build), wrapped in an image here: it is
used when present, else made from the cached binary or built now, and never
fetched from anywhere. A user-chosen image (DOCKER_MIRROR_REGISTRY_IMAGE) is
used when local, else pulled; where it cannot be pulled (air-gapped hosts,
CI sandboxes), Debian's own /usr/bin/docker-registry is wrapped instead.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile

import docker.errors

from ..errors import DockerError, RegistryImageError
from . import build, storage_drivers
from .client import short
from .registry_image_ref import RegistryImage  # what describe() gives; imported from here too

CONFIG_V2 = "/etc/docker/registry/config.yml"
CONFIG_V3 = "/etc/distribution/config.yml"
OFFLINE_REPO = "docker-mirror/registry"
OFFLINE_LABEL = "io.docker-mirror.built-offline"
VERSION_LABEL = "org.opencontainers.image.version"
# The sha256 of the binary an offline image wraps: an image of another binary
# under the same tag (a rebuild, another build of one version) is made again.
BINARY_LABEL = "io.docker-mirror.binary-sha256"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# What the official image ships, so the offline image also runs on its own.
DEFAULT_CONFIG = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""


def describe(client, ref: str) -> RegistryImage:
    """Inspect the local image `ref` and tell which distribution major it is.

    The tag says nothing reliable (`registry:latest` moved from 2 to 3), so
    the answer comes from the config path its command line names, or else
    from the OCI version label of an image that calls itself distribution.
    """
    image = _local_image(client, ref)
    if image is None:
        raise RegistryImageError(f"registry image {ref} is not present locally")
    config = image.attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    argv = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
    major = _major_from_argv(argv) or _major_from_labels(labels)
    if major is None:
        raise RegistryImageError(
            f"image {ref} is not a distribution registry image: its command "
            f"{argv or '(none)'} names neither {CONFIG_V2} nor {CONFIG_V3}"
        )
    return RegistryImage(
        ref=ref,
        image_id=image.id,
        major=major,
        config_path=CONFIG_V3 if major == 3 else CONFIG_V2,
        built_offline=labels.get(OFFLINE_LABEL) == "true",
    )


def ensure_registry_image(client, wanted: str, log=print) -> RegistryImage:
    """Return a usable registry image for `wanted`.

    The engine built here (a ref of build.image_ref's form, what Settings gives
    with CONFIG_DOCKER_MIRROR_REGISTRY_BUILT): ensure_built_image. Any other
    image: `wanted` if local or pullable, else one built offline from Debian's
    docker-registry binary."""
    if build.is_built_ref(wanted):
        return ensure_built_image(client, wanted, log=log)
    if _local_image(client, wanted) is not None:
        return describe(client, wanted)
    # Built offline before: keep it, and keep setup quick and quiet on an
    # air-gapped host. `docker pull` the wanted image to switch to it.
    # Only Debian's binary wrapped (TAG-offline): other offline-built images
    # (Redis..., the engine built here) carry the label too.
    for image in client.images.list(filters={"label": f"{OFFLINE_LABEL}=true"}):
        for tag in image.tags:
            if tag.startswith(OFFLINE_REPO + ":") and tag.endswith("-offline"):
                return describe(client, tag)
    try:
        client.images.pull(wanted)
        return describe(client, wanted)
    except docker.errors.DockerException as err:
        pull_error = short(err)
    built = build_offline_image(client, wanted, pull_error)
    log(f"could not pull {wanted} ({pull_error}); using {built.ref}, "
        f"built offline from {storage_drivers.HOST_REGISTRY_BINARY}")
    return built


def ensure_built_image(client, wanted: str | None = None, log=print, apt: bool = False) -> RegistryImage:
    """The image of the registry engine built here from this checkout's recipe and patches.

    Used when present (a mirror then starts with nothing from the network, even
    with no build cache: an image moved here with `docker load`), and made again
    when the cached binary was rebuilt since. Else made from the cached binary,
    or from a build run now when the toolchain and Debian's source are here
    (`apt`: may install them, as make deps does). Never pulled.
    """
    key = build.current_key()
    ref = build.image_ref(key)
    if wanted is not None and wanted != ref:
        if _local_image(client, wanted) is not None:
            return describe(client, wanted)
        raise RegistryImageError(f"registry image {wanted} is not here, and this checkout's registry "
                                 f"engine is {ref}: run `make engine`")
    image = _local_image(client, ref)
    made = build.cached(key)
    if image is not None and (made is None or
                              (image.labels or {}).get(BINARY_LABEL) == made.info.get("binary_sha256")):
        return describe(client, ref)
    if made is None:
        log(f"building the registry engine {ref} from {build.SOURCE_PACKAGE}'s source (once per machine)")
        made = build.ensure(apt=apt, log=log)
    return build_offline_image(client, binary=str(made.binary), ref=ref, labels=made.labels)


def build_offline_image(client, wanted: str = "registry:2", pull_error: str = "",
                        binary: str | None = None, ref: str | None = None,
                        labels: dict[str, str] | None = None) -> RegistryImage:
    """Build (or reuse) an image of a registry binary: `ref` (default
    docker-mirror/registry:<version>-offline) from `binary` (default:
    docker-registry on PATH, else /usr/bin/docker-registry), labelled with its
    version, its storage drivers, its sha256 and `labels`. An image of that ref
    holding another binary is made again."""
    binary = binary or storage_drivers.offline_binary()
    if not os.access(binary, os.X_OK):
        why = f" ({pull_error})" if pull_error else ""
        raise RegistryImageError(
            f"cannot pull {wanted}{why}, and cannot build it offline because "
            f"{binary} is missing: `apt-get install docker-registry` fixes it"
        )
    version = _binary_version(binary)
    ref = ref or f"{OFFLINE_REPO}:{version}-offline"
    digest = build.file_sha256(binary)
    existing = _local_image(client, ref)
    if existing is not None and (existing.labels or {}).get(BINARY_LABEL) == digest:
        return describe(client, ref)
    rootfs = _rootfs_tar(binary)
    changes = [
        f'ENTRYPOINT ["/bin/registry","serve","{CONFIG_V2}"]',
        "EXPOSE 5000",
        'VOLUME ["/var/lib/registry"]',
        f'LABEL {VERSION_LABEL}="{version}" {OFFLINE_LABEL}="true" {BINARY_LABEL}="{digest}"',
        # Builds may leave drivers out (Debian's has no azure): setup checks this.
        f'LABEL {storage_drivers.LABEL}="{storage_drivers.label_value(storage_drivers.of_binary(binary))}"',
        *(f'LABEL {name}={json.dumps(value)}' for name, value in sorted((labels or {}).items())),
    ]
    repo, tag = ref.rsplit(":", 1)
    try:
        answer = client.api.import_image_from_data(rootfs, repository=repo, tag=tag, changes=changes)
    except docker.errors.DockerException as err:
        raise DockerError(f"Docker refused to import {ref}: {short(err)}") from err
    failure = _import_failure(answer)
    if failure:
        raise DockerError(f"Docker refused to import {ref}: {failure}")
    return describe(client, ref)


def _local_image(client, ref: str):
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as err:
        raise DockerError(f"cannot inspect image {ref}: {short(err)}") from err


def _major_from_argv(argv) -> int | None:
    words = " ".join(str(word) for word in argv)
    if CONFIG_V3 in words:
        return 3
    if CONFIG_V2 in words:
        return 2
    return None


def _major_from_labels(labels: dict) -> int | None:
    identity = " ".join(
        labels.get(key, "")
        for key in ("org.opencontainers.image.source", "org.opencontainers.image.title")
    )
    if "distribution" not in identity:
        return None
    found = re.match(r"v?(\d+)\.", labels.get(VERSION_LABEL, ""))
    major = int(found.group(1)) if found else None
    return major if major in (2, 3) else None


def _binary_version(binary: str) -> str:
    # Prints e.g. "docker-registry github.com/docker/distribution 2.8.2+ds1";
    # the Debian suffix is dropped because "+" is not allowed in a tag.
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise RegistryImageError(f"cannot run {binary} --version: {err}") from err
    found = re.search(r"\bv?(\d+\.\d+\.\d+)", out)
    if not found:
        raise RegistryImageError(f"cannot read a version from `{binary} --version`: {out.strip()!r}")
    return found.group(1)


def _shared_libraries(binary: str) -> list[str]:
    try:
        out = subprocess.run(
            ["ldd", binary], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise RegistryImageError(f"cannot run ldd on {binary}: {err}") from err
    # "libc.so.6 => /lib/.../libc.so.6 (0x..)" and "/lib64/ld-linux-x86-64.so.2 (0x..)";
    # a static binary says "not a dynamic executable" and needs nothing.
    return re.findall(r"(?:=>\s*|^\s*)(/\S+)\s+\(0x", out, flags=re.MULTILINE)


def _rootfs_tar(binary: str) -> bytes:
    files: dict[str, tuple[bytes, int]] = {
        "bin/registry": (_read(binary), 0o755),
        "etc/passwd": (b"root:x:0:0:root:/root:/sbin/nologin\n"
                       b"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n", 0o644),
        "etc/group": (b"root:x:0:\nnogroup:x:65534:\n", 0o644),
        "etc/nsswitch.conf": (b"hosts: files dns\n", 0o644),
        CONFIG_V2.lstrip("/"): (DEFAULT_CONFIG.encode(), 0o644),
    }
    for lib in _shared_libraries(binary):
        # Copied as regular files at the path the loader asks for, so the
        # host's symlink layout (usrmerge or not) does not matter.
        files[lib.lstrip("/")] = (_read(lib), 0o755)
    if os.path.exists(CA_BUNDLE):
        files[CA_BUNDLE.lstrip("/")] = (_read(CA_BUNDLE), 0o644)

    return rootfs_tar(files, {"tmp": 0o1777, "var/lib/registry": 0o755, "root": 0o700})


def rootfs_tar(files: dict[str, tuple[bytes, int]], dirs: dict[str, int]) -> bytes:
    """An image's file system as a tar: `dirs` ({path: mode}) and every parent of
    `files` ({path: (bytes, mode)}) as directories, then the files (the offline
    registry image and the tool images of mirror.engine.tool_images alike)."""
    dirs = dict(dirs)
    for name in files:
        parent = os.path.dirname(name)
        while parent:
            dirs.setdefault(parent, 0o755)
            parent = os.path.dirname(parent)

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(dirs):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, dirs[name]
            tar.addfile(info)
        for name in sorted(files):
            data, mode = files[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _import_failure(answer) -> str:
    """The error message in an /images/create answer, or "" on success."""
    for line in str(answer).splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and (message.get("error") or message.get("errorDetail")):
            return str(message.get("error") or message["errorDetail"])
    return ""
