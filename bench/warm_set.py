"""What bench/warm.py and its two modes (bench/warm_cold.py, bench/warm_compare.py) share: the
image set and its pushing, the plain parallel-GET limit, fresh mirrors and a timed warm.

A module of its own so that warm.py imports its modes and they import this, one way (they
used to `import warm`, which imports them). warm.py's --concurrency and --registry-image
set CONCURRENCY and OVERRIDES here, before any mirror is made.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common  # noqa: F401  (sys.path)
from common import MB, Stopwatch

import requests  # noqa: E402

from mirror.services import install, warm  # noqa: E402
from mirror.model.manifests import blobs_of  # noqa: E402
from mirror.net import registry_api as regapi  # noqa: E402
from support.mirrors import Mirror  # noqa: E402
from support.upstream import UpstreamRegistry, make_layer, push_image  # noqa: E402

# (repository, has the half-shared layer, MB of its own layer at scale 1)
BIG = [("minio/minio", True, 4), ("vllm/vllm-openai", True, 8), ("milvusdb/milvus", True, 12),
       ("library/postgres", True, 16), ("library/python", False, 20), ("grafana/grafana", False, 24),
       ("bitnami/kafka", False, 28), ("library/redis", False, 32)]
BASE_MB, HALF_MB = 20, 8
SMALL = ["library/alpine", "library/busybox", "library/nginx", "library/golang", "library/node",
         "prom/prometheus", "prom/alertmanager", "bitnami/etcd", "library/memcached",
         "library/rabbitmq", "library/traefik", "library/haproxy"]
SMALL_BASE, SMALL_OWN = 512_000, 64_000   # bytes; not scaled (the re-warm is about requests)
BIG_TAG, SMALL_TAG = "bench", "small"
GET_THREADS = 4
CHUNK = 1 << 20


def log_to(lines: list):
    return lambda line: lines.append((time.perf_counter(), line))


# ------------------------------------------------------------------ images

def push_images(hub: UpstreamRegistry, scale: float) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """Push the big and small sets; returns, for the big set, {digest: {size, repository}}
    of its unique blobs and {repository: its blob digests}."""
    size = lambda mb: max(64_000, int(mb * scale * MB))  # noqa: E731
    base = make_layer(size(BASE_MB), "bench-base")
    half = make_layer(size(HALF_MB), "bench-half")
    for repository, with_half, own_mb in BIG:
        layers = [base, *([half] if with_half else []), make_layer(size(own_mb), f"own-{repository}")]
        push_image(hub.url, repository, BIG_TAG, layers=layers)
    small_base = make_layer(SMALL_BASE, "small-base")
    for repository in SMALL:
        push_image(hub.url, repository, SMALL_TAG,
                   layers=[small_base, make_layer(SMALL_OWN, f"small-{repository}")])
    api = regapi.RegistryAPI(hub.url)
    blobs, per_repository = {}, {}
    for repository, _, _ in BIG:
        manifest = api.get_manifest(repository, BIG_TAG)
        per_repository[repository] = [d["digest"] for d in blobs_of(manifest.json)]
        for descriptor in blobs_of(manifest.json):
            blobs.setdefault(descriptor["digest"], {"size": descriptor["size"], "repository": repository})
    return blobs, per_repository


def big_refs() -> list[str]:
    return [f"{repository}:{BIG_TAG}" for repository, _, _ in BIG]


def all_refs() -> list[str]:
    return big_refs() + [f"{repository}:{SMALL_TAG}" for repository in SMALL]


def write_list(path: Path, refs: list[str]) -> None:
    path.write_text("# bench/warm.py\n" + "\n".join(refs) + "\n")


# ------------------------------------------------------------------ measurements

def parallel_get(base_url: str, blobs: dict[str, dict]) -> float:
    """Seconds to GET every blob once, GET_THREADS at a time; digests checked."""
    def fetch(item):
        digest, info = item
        hasher = hashlib.sha256()
        with requests.get(f"{base_url}/v2/{info['repository']}/blobs/{digest}", stream=True,
                          timeout=60) as answer:
            answer.raise_for_status()
            for chunk in answer.iter_content(CHUNK):
                hasher.update(chunk)
        if "sha256:" + hasher.hexdigest() != digest:
            raise RuntimeError(f"parallel GET of {digest}: wrong content")

    with Stopwatch() as sw, ThreadPoolExecutor(GET_THREADS) as pool:
        list(pool.map(fetch, blobs.items()))
    return sw.seconds


class Phases:
    """A warm.warm() call's log, timed: fetch phase, then pins + collection, results."""

    def __init__(self, start: float, end: float, lines: list[tuple[float, str]]):
        self.total = end - start
        self.log = "\n".join(f"{t - start:7.3f} {line}" for t, line in lines)
        per_image = [i for i, (_, line) in enumerate(lines) if ": ok " in line or ": FAILED" in line]
        self.failed = [line for _, line in lines if ": FAILED" in line]
        self.fetched_images = sum(" fetched 0 B," not in lines[i][1] for i in per_image)
        last = per_image[-1] if per_image else 0
        fetch_end = lines[last][0] if per_image else end
        self.fetch = fetch_end - start
        self.after = end - fetch_end  # pins, the collection, the summary
        collected = [line for _, line in lines if line.startswith("garbage collection")]
        self.collected = collected[0].split(",")[0].split(": ", 1)[-1] if collected else "no collection"


def timed_warm(mirror: Mirror, client) -> Phases:
    lines: list = []
    start = time.perf_counter()
    failed = warm.warm(mirror.settings, log=log_to(lines), client=client)
    phases = Phases(start, time.perf_counter(), lines)
    if failed:
        raise RuntimeError(f"warm failed for {failed}:\n" + "\n".join(line for _, line in lines))
    return phases


# ------------------------------------------------------------------ mirrors

CONCURRENCY = 8  # the Kconfig default; --concurrency changes it
OVERRIDES: dict = {}  # the mirrors' other settings: --registry-image


def new_mirror(tmp: Path, name: str, remote: str, listing: Path, client, made: list) -> Mirror:
    mirror = Mirror(tmp / name, remote, DOCKER_MIRROR_IMAGES_EXTRA_LIST=str(listing),
                    DOCKER_MIRROR_PULL_CONCURRENCY=CONCURRENCY, **OVERRIDES)
    made.append(mirror)
    install.start_mirrors(mirror.settings, client, log=lambda _: None)
    return mirror
