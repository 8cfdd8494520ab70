#!/usr/bin/env python3
"""Replicas (issue 13): throughput of parallel cached pulls, 1 registry vs 3 behind HAProxy.

One SeaweedFS (s3 backend) and one upstream holding N images; one mirror
configuration on that bucket, set up in turn with DOCKER_MIRROR_REPLICAS=1
(one registry on the mirror's port) and 3 (HAProxy on that port, three
replicas, Redis), by `make docker-mirror`'s own code path. The images are
warmed once; every measured round is then a cache hit for every blob. Per
round, C client processes (several processes, so that the clients' Python
is not the bound) each pull every image (manifest, then every blob, bytes
counted, redirects followed), all at once; throughput = bytes / wall time.
The two settings alternate round by round on the same storage, in the same
run, after one unmeasured warm-up round each (Redis and page cache warm).

    python3 bench/replicas.py [--images 8] [--mb 16] [--clients 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

from common import MB, docker_client, registry_image, table

from mirror.services import warm  # noqa: E402
from mirror.services import install  # noqa: E402
from support.configs import image_list  # noqa: E402
from support.mirrors import Mirror  # noqa: E402
from support.replicas import free_port_block, haproxy_servers  # noqa: E402
from support.seaweed import SeaweedS3  # noqa: E402
from support.upstream import UpstreamRegistry, make_layer, push_image  # noqa: E402

ACCEPT = ", ".join(["application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.oci.image.manifest.v1+json"])


def _client(args) -> int:
    """One client: every image, manifest then blobs; the bytes received."""
    url, names = args
    session, total = requests.Session(), 0
    for name in names:
        manifest = session.get(f"{url}/v2/{name}/manifests/1", headers={"Accept": ACCEPT}, timeout=60)
        manifest.raise_for_status()
        total += len(manifest.content)
        body = manifest.json()
        for blob in [body["config"], *body["layers"]]:
            with session.get(f"{url}/v2/{name}/blobs/{blob['digest']}", stream=True, timeout=60) as answer:
                answer.raise_for_status()
                for chunk in answer.iter_content(1 << 20):
                    total += len(chunk)
    return total


def _manifests(args) -> int:
    """One client: `count` manifest GETs by digest (served from the storage by the registry
    itself, no upstream asked, no redirect); the number done."""
    url, refs, count = args
    session = requests.Session()
    for n in range(count):
        name, digest = refs[n % len(refs)]
        session.get(f"{url}/v2/{name}/manifests/{digest}", headers={"Accept": ACCEPT},
                    timeout=60).raise_for_status()
    return count


def one_round(pool, url: str, names: list[str], clients: int) -> tuple[float, int]:
    start = time.perf_counter()
    total = sum(pool.map(_client, [(url, names)] * clients))
    return time.perf_counter() - start, total


def manifest_round(pool, url: str, refs, clients: int, count: int) -> float:
    start = time.perf_counter()
    done = sum(pool.map(_manifests, [(url, refs, count)] * clients))
    return done / (time.perf_counter() - start)


def _until(predicate, timeout: float = 60) -> float:
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise RuntimeError("timed out")
        time.sleep(0.01)
    return time.perf_counter() - start


def measure_failover(client, mirror, rounds: int) -> list[tuple[float, float, float]]:
    """Per round: `docker kill` of replica 2 -> HAProxy marks it DOWN; the keeper's check
    (install.start_mirrors, what it runs on the die event) re-creating it; -> HAProxy UP."""
    stats = mirror.settings.replicas.stats_port
    victim = sorted(haproxy_servers(stats))[1]
    found = []
    for _ in range(rounds):
        client.containers.get(victim).kill()
        down = _until(lambda: haproxy_servers(stats)[victim]["status"].startswith("DOWN"))
        start = time.perf_counter()
        install.start_mirrors(mirror.settings, client, log=lambda _: None, keep_serving=True)
        repair = time.perf_counter() - start
        up = _until(lambda: haproxy_servers(stats)[victim]["status"] == "UP")
        found.append((down, repair, up))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--mb", type=int, default=16, help="size of each image's own layer")
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300, help="manifest GETs per client per round")
    opts = parser.parse_args()
    client = docker_client()
    registry_image(client, "registry:2")
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        tmp = Path(tmp)
        store = SeaweedS3(tmp / "seaweed", "benchkey", "bench-secret").start()
        hub = UpstreamRegistry(tmp / "hub").start()
        mirror = None
        try:
            store.make_bucket("bench")
            base = make_layer(4 * MB, "bench-base")
            names = [f"library/bench{n}" for n in range(opts.images)]
            for n, name in enumerate(names):
                push_image(hub.url, name, "1", layers=[base, make_layer(opts.mb * MB, f"bench-{n}")])
            mirror = Mirror(tmp / "mirror", hub.url, DOCKER_MIRROR_STORAGE_FILESYSTEM=False,
                            DOCKER_MIRROR_STORAGE_S3=True, DOCKER_MIRROR_S3_ENDPOINT=store.endpoint,
                            DOCKER_MIRROR_S3_BUCKET="bench", DOCKER_MIRROR_S3_ACCESS_KEY_ID="benchkey",
                            DOCKER_MIRROR_S3_SECRET_KEY="bench-secret",
                            DOCKER_MIRROR_REPLICA_PORT_BASE=free_port_block(),
                            DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp, *(f"{n}:1" for n in names)))
            install.start_mirrors(mirror.settings, client, log=lambda _: None)
            failed = warm.warm(mirror.settings, log=lambda _: None, client=client)
            if failed:
                print(f"warm failed: {failed}", file=sys.stderr)
                return 1
            first = json.loads(requests.get(f"{mirror.url()}/v2/{names[0]}/manifests/1",
                                            headers={"Accept": ACCEPT}, timeout=30).content)
            served = requests.get(f"{mirror.url()}/v2/{names[0]}/blobs/{first['layers'][1]['digest']}",
                                  allow_redirects=False, timeout=60)
            refs = [(name, push_image(hub.url, name, "1", layers=[base, make_layer(opts.mb * MB, f"bench-{n}")]))
                    for n, name in enumerate(names)]   # the same image again: its digest
            results: dict[int, list[float]] = {1: [], 3: []}
            rates: dict[int, list[float]] = {1: [], 3: []}
            per_server: dict[str, int] = {}
            with multiprocessing.get_context("fork").Pool(opts.clients) as pool:
                for round_ in range(opts.rounds + 1):
                    for count in (1, 3):
                        mirror.configure(DOCKER_MIRROR_REPLICAS=count)
                        install.start_mirrors(mirror.settings, client, log=lambda _: None)
                        if count == 3:
                            stats = mirror.settings.replicas.stats_port
                            deadline = time.monotonic() + 30
                            while not all(s["status"] == "UP" for s in haproxy_servers(stats).values()):
                                if time.monotonic() > deadline:
                                    raise RuntimeError("replicas never all UP")
                                time.sleep(0.2)
                        one_round(pool, mirror.url(), names, opts.clients)   # warm-up, not counted
                        seconds, total = one_round(pool, mirror.url(), names, opts.clients)
                        rate = manifest_round(pool, mirror.url(), refs, opts.clients, opts.requests)
                        if round_ > 0:   # the first round of each: warm-up of the warm-up
                            results[count].append(total / seconds / MB)
                            rates[count].append(rate)
                        if count == 3:
                            per_server = {n: int(s["stot"]) for n, s in haproxy_servers(stats).items()}
                failover = measure_failover(client, mirror, opts.rounds)
            total_mb = total / MB
        finally:
            if mirror is not None:
                mirror.remove(client)
            hub.stop()
            store.stop()
    print(f"{opts.clients} client processes, each pulling {opts.images} images "
          f"({opts.mb} MB own layer + 4 MB shared base): {total_mb:.0f} MB per round, all cached; "
          f"then {opts.requests} manifest GETs by digest each; {opts.rounds} measured rounds per "
          f"setting, alternating. A blob GET through the mirror answers HTTP {served.status_code}"
          + (" (a redirect: the client fetches the bytes from the object store itself)"
             if 300 <= served.status_code < 400 else " (the bytes pass through the registry)"))
    rows = []
    for what, unit, found in (("pulls (manifest + blobs)", "MB/s", results),
                              ("manifest GETs by digest", "requests/s", rates)):
        one, three = statistics.median(found[1]), statistics.median(found[3])
        rows.append([what, "1 (baseline)", f"{one:.0f} {unit}", f"{min(found[1]):.0f}-{max(found[1]):.0f}",
                     "1.00", f"{one:.0f}"])
        rows.append([what, "3 behind HAProxy", f"{three:.0f} {unit}",
                     f"{min(found[3]):.0f}-{max(found[3]):.0f}", f"{three / one:.2f}", f"{three / 3:.0f}"])
    print(table(["case", "replicas", "median", "range", "× 1 replica", "per replica"], rows))
    print(f"sessions per replica in the last round (HAProxy): {per_server}")
    print()
    rows = []
    for label, index in (("`docker kill` -> HAProxy marks it DOWN", 0),
                         ("the keeper's check re-creates it (answering)", 1),
                         ("then -> HAProxy marks it UP", 2)):
        values = [f[index] for f in failover]
        rows.append([label, f"{statistics.median(values):.2f}", f"{min(values):.2f}-{max(values):.2f}"])
    print(table(["one replica of 3 killed (no load)", "median s", "range"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
