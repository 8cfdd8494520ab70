"""Local "upstream" registries on loopback, holding synthetic images.

The upstream is Debian's real distribution binary run as a plain process (no
container), so tests can stop it and bring it back on the same port to act
out an upstream outage. Images are pushed through the registry HTTP API, so
what the mirror sees is byte for byte what a real registry would serve.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import subprocess
import tarfile
import time
from pathlib import Path
from urllib.parse import urljoin

import requests

from mirror.host.ports import port_is_free
from mirror.model.endpoint import debug_port

REGISTRY_BINARY = "/usr/bin/docker-registry"

MEDIA = {
    "docker": {
        "manifest": "application/vnd.docker.distribution.manifest.v2+json",
        "index": "application/vnd.docker.distribution.manifest.list.v2+json",
        "config": "application/vnd.docker.container.image.v1+json",
        "layer": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    },
    "oci": {
        "manifest": "application/vnd.oci.image.manifest.v1+json",
        "index": "application/vnd.oci.image.index.v1+json",
        "config": "application/vnd.oci.image.config.v1+json",
        "layer": "application/vnd.oci.image.layer.v1.tar+gzip",
    },
}

HTTP_TIMEOUT = 30


# Ports handed out below the kernel's ephemeral range (32768 on, see
# /proc/sys/net/ipv4/ip_local_port_range): there, any process's outgoing connection
# may take a port between the moment a test picks it and the moment a server binds it
# (a clean-clone CI run lost a mirror's debug port to SeaweedFS's own traffic that
# way). A mirror's debug port sits DEBUG_PORT_OFFSET above its port, so the range is
# chosen for both to stay clear of free_port_block()'s replica blocks and their debug
# ports (20000-22767 and 30000-32767).
FREE_PORTS = range(12768, 20000)
_next_free = random.Random().randrange(len(FREE_PORTS))


def free_port() -> int:
    """A loopback TCP port nobody listens on right now, and its debug port beside it."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback TCP ports, each free right now with its debug port.

    They come from a cursor that walks FREE_PORTS, so this process hands no port out
    twice until the cursor has gone all the way round: the kernel's bind(0) could give
    a port back again as soon as its socket closed."""
    global _next_free
    found = []
    for _ in range(len(FREE_PORTS)):
        port = FREE_PORTS[_next_free]
        _next_free = (_next_free + 1) % len(FREE_PORTS)
        if port_is_free("127.0.0.1", port) and port_is_free("127.0.0.1", debug_port(port)):
            found.append(port)
            if len(found) == count:
                return found
    raise RuntimeError(f"fewer than {count} free loopback ports in {FREE_PORTS}")


def wait_for_v2(url: str, timeout: float = 15.0, alive=lambda: True) -> None:
    """Return once GET {url}/v2/ answers 200; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline and alive():
        try:
            r = requests.get(f"{url}/v2/", timeout=2)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except requests.RequestException as err:
            last = str(err)
        time.sleep(0.1)
    raise RuntimeError(f"{url}/v2/ did not answer 200 within {timeout}s: {last}")


class UpstreamRegistry:
    """A plain registry (deletes enabled) serving `root`/data on 127.0.0.1.

    A mirror container on Docker's bridge network cannot reach the host's
    loopback: give it `bind="0.0.0.0"` and the container
    `extra_hosts={"host.docker.internal": "host-gateway"}`, or run the
    container with `network_mode="host"`. `.url` always stays on loopback.
    """

    def __init__(self, root, port: int | None = None, binary: str = REGISTRY_BINARY,
                 bind: str = "127.0.0.1"):
        self.root = Path(root)
        self.port = port or free_port()
        self.binary = binary
        self.bind = bind
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.storage = self.root / "data"
        self.config_path = self.root / "config.yml"
        self.log_path = self.root / "registry.log"
        self._proc: subprocess.Popen | None = None

    def _write_config(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps({  # JSON is valid YAML
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            # A fixed secret keeps upload state valid across restarts.
            "http": {"addr": f"{self.bind}:{self.port}", "secret": "upstream-test-secret"},
        }, indent=2))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "UpstreamRegistry":
        if self.running:
            return self
        self._write_config()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            wait_for_v2(self.url, alive=lambda: self.running)
        except RuntimeError as err:
            self.stop()
            raise RuntimeError(f"{err}\n--- {self.log_path} ---\n{self.log_tail()}") from None
        if not self.running:
            raise RuntimeError(f"upstream registry exited at start:\n{self.log_tail()}")
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "UpstreamRegistry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------- images

def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar_gz(files: dict[str, bytes], compresslevel: int = 6) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    # mtime=0 keeps the gzip header, hence the digest, reproducible.
    return gzip.compress(raw.getvalue(), compresslevel=compresslevel, mtime=0)


def make_layer(size_bytes: int, seed, compresslevel: int = 1) -> bytes:
    """A gzip tar layer of about `size_bytes`, random so it barely compresses
    (compresslevel 0: stored as is, the quickest to make for big layers)."""
    data = random.Random(f"layer-{seed}").randbytes(size_bytes)
    return _tar_gz({f"data/blob-{seed}.bin": data}, compresslevel=compresslevel)


def _parse_platform(platform: str) -> dict:
    parts = platform.split("/")
    if len(parts) not in (2, 3):
        raise ValueError(f"platform {platform!r} is not OS/ARCH[/VARIANT]")
    found = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        found["variant"] = parts[2]
    return found


class _Pusher:
    def __init__(self, base_url: str, repo: str, media: str):
        if media not in MEDIA:
            raise ValueError(f"media must be one of {sorted(MEDIA)}, not {media!r}")
        self.base = base_url.rstrip("/")
        self.repo = repo
        self.types = MEDIA[media]
        self.http = requests.Session()

    def _check(self, r: requests.Response, what: str, *ok: int) -> requests.Response:
        if r.status_code not in ok:
            raise RuntimeError(f"{what}: HTTP {r.status_code} {r.text[:500]}")
        return r

    def blob(self, data: bytes) -> str:
        digest = _sha256(data)
        blob_url = f"{self.base}/v2/{self.repo}/blobs/{digest}"
        if self.http.head(blob_url, timeout=HTTP_TIMEOUT).status_code == 200:
            return digest
        started = self._check(
            self.http.post(f"{self.base}/v2/{self.repo}/blobs/uploads/", timeout=HTTP_TIMEOUT),
            f"start upload to {self.repo}", 202)
        location = urljoin(self.base + "/", started.headers["Location"])
        joiner = "&" if "?" in location else "?"
        self._check(
            self.http.put(f"{location}{joiner}digest={digest}", data=data, timeout=HTTP_TIMEOUT,
                          headers={"Content-Type": "application/octet-stream"}),
            f"upload blob {digest} to {self.repo}", 201)
        return digest

    def manifest(self, body: dict, reference: str | None) -> tuple[str, int]:
        """PUT a manifest under `reference`, or under its own digest if None."""
        raw = json.dumps(body, indent=2).encode()
        digest = _sha256(raw)
        reference = reference or digest
        r = self._check(
            self.http.put(f"{self.base}/v2/{self.repo}/manifests/{reference}", data=raw,
                          headers={"Content-Type": body["mediaType"]}, timeout=HTTP_TIMEOUT),
            f"put manifest {self.repo}:{reference}", 201)
        served = r.headers.get("Docker-Content-Digest")
        if served and served != digest:
            raise RuntimeError(f"registry stored {served} for a manifest whose digest is {digest}")
        return digest, len(raw)

    def image(self, layers: list[bytes], platform: dict, reference: str | None) -> tuple[str, int]:
        descriptors, diff_ids = [], []
        for layer in layers:
            if layer[:2] != b"\x1f\x8b":  # a plain tar: compress it like a real layer
                layer = gzip.compress(layer, mtime=0)
            diff_ids.append(_sha256(gzip.decompress(layer)))
            descriptors.append({"mediaType": self.types["layer"], "size": len(layer),
                                "digest": self.blob(layer)})
        config = json.dumps({
            **platform,
            "created": "2020-09-13T12:26:40Z",
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2020-09-13T12:26:40Z", "created_by": "tests.support.upstream"}
                        for _ in layers],
        }).encode()
        return self.manifest({
            "schemaVersion": 2,
            "mediaType": self.types["manifest"],
            "config": {"mediaType": self.types["config"], "size": len(config),
                       "digest": self.blob(config)},
            "layers": descriptors,
        }, reference)


def push_image(base_url: str, repo: str, tag: str, layers: list[bytes] | None = None,
               platforms: list[str] | None = None, media: str = "docker") -> str:
    """Push a synthetic image to the registry at `base_url`; return the digest
    of the manifest (or, with several platforms, the index) `repo:tag` names.

    Layers default to one small tar.gz whose contents depend on repo, tag and
    platform, so distinct images never share blobs by accident.
    """
    pusher = _Pusher(base_url, repo, media)
    try:
        return _push(pusher, repo, tag, layers, platforms or ["linux/amd64"])
    finally:
        pusher.http.close()


def _push(pusher: _Pusher, repo: str, tag: str, layers, wanted: list[str]) -> str:
    def layers_for(platform: str) -> list[bytes]:
        if layers is not None:
            return layers
        return [_tar_gz({"hello.txt": f"{repo}:{tag} for {platform}\n".encode()})]

    if len(wanted) == 1:
        digest, _ = pusher.image(layers_for(wanted[0]), _parse_platform(wanted[0]), tag)
        return digest

    children = []
    for platform in wanted:
        parsed = _parse_platform(platform)
        digest, size = pusher.image(layers_for(platform), parsed, None)
        children.append({"mediaType": pusher.types["manifest"], "size": size,
                         "digest": digest, "platform": parsed})
    digest, _ = pusher.manifest({"schemaVersion": 2, "mediaType": pusher.types["index"],
                                 "manifests": children}, tag)
    return digest
