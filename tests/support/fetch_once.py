"""What a pull costs on the shared link: an image's bytes, clients pulling at once, the cache's storage tree.

Shared by tests/engine/test_fetch_once.py (which asserts the counts) and
bench/fetch_once.py (which prints them as ratios).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mirror.model.manifests import blobs_of
from mirror.net.registry_api import RegistryAPI
from support.link import LinkCounts, SharedLink

SKOPEO_TIMEOUT = 300


@dataclass(frozen=True)
class ImageBytes:
    """An image as its registry holds it: {digest: size} of its config and layers, and its manifest's size."""
    repository: str
    tag: str
    blobs: dict[str, int]
    manifest_size: int

    @property
    def blob_bytes(self) -> int:
        return sum(self.blobs.values())

    @property
    def biggest(self) -> str:
        return max(self.blobs, key=self.blobs.get)


def image_bytes(registry_url: str, repository: str, tag: str) -> ImageBytes:
    manifest = RegistryAPI(registry_url).get_manifest(repository, tag)
    return ImageBytes(repository, tag, {d["digest"]: d["size"] for d in blobs_of(manifest.json)},
                      len(manifest.body))


# ---------------------------------------------------------------- the storage tree

def stored(storage: Path, repository: str, digest: str) -> bool:
    """True when the proxy can serve `digest` from its own storage: the blob's data
    and its link in the repository (without the link it goes upstream again)."""
    algorithm, hexdigest = digest.split(":", 1)
    v2 = storage / "docker/registry/v2"
    return (v2 / "blobs" / algorithm / hexdigest[:2] / hexdigest / "data").is_file() and \
        (v2 / "repositories" / repository / "_layers" / algorithm / hexdigest / "link").is_file()


def wait_stored(storage: Path, repository: str, digests, timeout: float) -> list[str]:
    """The digests still not stored after up to `timeout` seconds (the proxy stores in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        missing = [d for d in digests if not stored(storage, repository, d)]
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(0.1)


# ---------------------------------------------------------------- clients

def skopeo_copy(host: str, repository: str, tag: str, dest: Path) -> subprocess.Popen:
    """Start `skopeo copy` of host/repository:tag (plain HTTP) into the directory `dest`."""
    return subprocess.Popen(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                             f"docker://{host}/{repository}:{tag}", f"dir:{dest}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(clients: list[subprocess.Popen], timeout: float = SKOPEO_TIMEOUT) -> None:
    """Wait for every client; RuntimeError naming the first that failed, with what it said."""
    deadline = time.monotonic() + timeout
    failed = []
    for client in clients:
        try:
            _, err = client.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            client.kill()
            _, err = client.communicate()
            failed.append(f"{' '.join(client.args[-2:])}: still running after {timeout:.0f} s")
            continue
        if client.returncode != 0:
            failed.append(f"{' '.join(client.args[-2:])}: exit {client.returncode}: {err.strip()[-500:]}")
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(clients)} skopeo copies failed: " + "; ".join(failed))


def pull_at_once(host: str, image: ImageBytes, dests: list[Path]) -> None:
    """len(dests) clients pull `image` from `host` at once, each into its own directory."""
    finish([skopeo_copy(host, image.repository, image.tag, dest) for dest in dests])


def pull_met_in_flight(mirror_port: int, upstream: SharedLink, image: ImageBytes, dests: list[Path],
                       timeout: float = 60.0) -> None:
    """Like pull_at_once through the mirror, but sure that every client asks for the image's
    biggest blob while the mirror's upstream fetch of it is still under way.

    The upstream link keeps that blob back until each client's GET of it has
    reached the mirror (seen on a counting link between the clients and the
    mirror), so nothing depends on how fast the clients happen to start.
    """
    digest = image.biggest
    with SharedLink(("127.0.0.1", mirror_port)) as clients_side:
        upstream.hold(digest)
        try:
            clients = [skopeo_copy(clients_side.host, image.repository, image.tag, dest) for dest in dests]
            deadline = time.monotonic() + timeout
            while (len(clients_side.counts().blob_gets().get(digest, [])) < len(dests)
                   and time.monotonic() < deadline and any(c.poll() is None for c in clients)):
                time.sleep(0.05)
            asked = len(clients_side.counts().blob_gets().get(digest, []))
            time.sleep(0.3)  # the last GET crossed to the mirror: let its handler reach the proxy code
        finally:
            upstream.release()
        finish(clients)
    if asked < len(dests):
        raise RuntimeError(f"only {asked} of {len(dests)} clients asked for {digest} within {timeout:.0f} s")


# ---------------------------------------------------------------- what crossed

def mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def fetches(counts: LinkCounts, image: ImageBytes) -> dict[str, int]:
    """{digest: upstream GETs of it} for the image's blobs."""
    gets = counts.blob_gets()
    return {digest: len(gets.get(digest, [])) for digest in image.blobs}


def describe(counts: LinkCounts, image: ImageBytes) -> str:
    """The link's counts against the image, for an assertion's message or a report."""
    per_blob = ", ".join(f"{d[7:19]} ({mb(image.blobs[d])}): {n}" for d, n in fetches(counts, image).items())
    others = {}
    for request in counts.requests:
        if request.blob() is None:
            key = f"{request.method} {'manifest' if '/manifests/' in request.path else request.path[:40]}"
            others[key] = others.get(key, 0) + 1
    return (f"{mb(counts.bytes_down)} crossed the link for {mb(image.blob_bytes)} of blobs "
            f"({counts.bytes_down / image.blob_bytes:.2f}x): blob content {mb(counts.blob_body_bytes)} "
            f"({counts.blob_body_bytes / image.blob_bytes:.2f}x), headers/manifests/pings "
            f"{counts.overhead} B; upstream GETs per blob: {per_blob}; other requests: {others}")
