#!/usr/bin/env python3
"""The cache's garbage collection on object storage (issue 19): three replicas on SeaweedFS
behind HAProxy, against the filesystem mirror in the same run (the baseline).

The workload of bench/gc.py, on both backends: a fresh mirror (a plain
registry: pull-through off, so that the images are pushed straight into its
storage through the registry HTTP API) is filled with N images, one small
base layer shared by all and one incompressible layer of its own each; then,
with a size limit of half the cache, the product's collection
(`lifecycle.collect`, what `make docker-mirror-gc` and every refresh run)
drops the least recently cached half: links removed, distribution's
`garbage-collect` in a one-shot container against the same storage, every
replica stopped meanwhile. Measured on each backend:

  collection     lifecycle.collect, end to end
  unavailable    the collection's own figure (replicas stopped -> the mirror's
                 address answering again), and the longest gap a client asking
                 `/v2/` every 5 ms through the mirror's address saw
  freed          the fall of the storage's usage (`du` of the directory; the
                 sum of the object sizes in the bucket, listed by botocore)
                 against the bytes the dropped images alone held

    python3 bench/gc_object_store.py [--size-mb 256] [--images 8] [--replicas 3]

Exits 1 when the freed bytes are off by more than 2 % or a step fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import random
import sys
import tempfile
import time
from pathlib import Path

from common import MB, Stopwatch, docker_client, registry_image, table

from mirror.services import cache_store, install, lifecycle  # noqa: E402
from support.mirrors import Mirror  # noqa: E402
from support.replicas import free_port_block  # noqa: E402
from support.seaweed import SeaweedS3  # noqa: E402

# bench/gc.py's push and prober (its name is the standard library's gc: loaded by path).
_spec = importlib.util.spec_from_file_location("bench_gc", Path(__file__).with_name("gc.py"))
bench_gc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_gc)

BASE = 4 * MB
BUCKET = "gc-bench"
KEYS = ("gcbench", "gc-bench-secret-key")


def usage(settings) -> int:
    """The storage's usage as the product reads it (du, or the bucket's object sizes)."""
    store = cache_store.open_store(settings, settings.upstreams[0])
    return store.usage()


def one_backend(client, tmp: Path, label: str, size: int, count: int, **overrides) -> dict:
    mirror = Mirror(tmp / label, "http://127.0.0.1:9", DOCKER_MIRROR_PULL_THROUGH_CACHE=False, **overrides)
    try:
        if mirror.settings.replicas.enabled:
            mirror.setup()   # replicas, HAProxy and Redis
        else:
            install.start_mirrors(mirror.settings, client, log=lambda _: None)
        own = (size - BASE) // count
        base = random.Random("base").randbytes(BASE)
        held = {}
        with Stopwatch() as pushing:
            for n in range(count):  # pushed in order: the first ones are the least recently cached
                layer = random.Random(f"{size}-{n}").randbytes(own)
                held[f"bench/img{n:02d}"] = bench_gc.push(mirror.url(), f"bench/img{n:02d}", [base, layer])
                time.sleep(1.1)  # distinct link times (an object store's are in seconds): push order
        before = usage(mirror.settings)
        limited = dataclasses.replace(mirror.settings, lifecycle=dataclasses.replace(
            mirror.settings.lifecycle, max_bytes=before // 2))
        lines = []
        with bench_gc.Prober(mirror.url()) as prober, Stopwatch() as collecting:
            done = lifecycle.collect(limited, client, log=lines.append)
        after = usage(mirror.settings)
        dropped = [e.image.repository for e in done.plan.evictions]
        return {"label": label, "count": count, "own": own, "push": pushing.seconds, "before": before,
                "after": after, "collect": collecting.seconds,
                "unavailable": done.unavailable.get("dockerhub", 0.0), "gap": prober.longest,
                "probe_failures": prober.failures, "dropped": len(dropped),
                "expected": sum(held[name] for name in dropped),
                "order_ok": dropped == sorted(held)[:len(dropped)], "log": lines}
    finally:
        mirror.remove(client)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256, help="cache size in MB (default 256)")
    parser.add_argument("--images", type=int, default=8, help="images (default 8)")
    parser.add_argument("--replicas", type=int, default=3, help="replicas on SeaweedFS (default 3)")
    args = parser.parse_args(argv)
    size = args.size_mb * MB
    client = docker_client()
    with tempfile.TemporaryDirectory(prefix="gc-object-bench-", dir="/var/tmp") as tmp:
        tmp = Path(tmp)
        _, note = registry_image(client, Mirror(tmp / "probe", "http://127.0.0.1:9").settings.registry_image)
        results = [one_backend(client, tmp, "filesystem", size, args.images)]
        with SeaweedS3(tmp / "seaweed", *KEYS) as store:
            store.make_bucket(BUCKET)
            results.append(one_backend(
                client, tmp, f"s3 on SeaweedFS, {args.replicas} replicas", size, args.images,
                DOCKER_MIRROR_STORAGE_FILESYSTEM=False, DOCKER_MIRROR_STORAGE_S3=True,
                DOCKER_MIRROR_S3_ENDPOINT=store.endpoint, DOCKER_MIRROR_S3_BUCKET=BUCKET,
                DOCKER_MIRROR_S3_ACCESS_KEY_ID=KEYS[0], DOCKER_MIRROR_S3_SECRET_KEY=KEYS[1],
                DOCKER_MIRROR_S3_ROOT_DIRECTORY="/bench", DOCKER_MIRROR_REPLICAS=args.replicas,
                DOCKER_MIRROR_REPLICA_PORT_BASE=free_port_block()))
    print(f"garbage collection on object storage; {note}; {args.images} images, "
          f"{size / MB:.0f} MB; half dropped by a size limit; MB = 10^6 bytes")
    print()
    base, rows, ok = results[0], [], True
    for r in results:
        freed = r["before"] - r["after"]
        ratio = freed / r["expected"] if r["expected"] else 0.0
        ok = ok and abs(ratio - 1) <= 0.02 and r["order_ok"]
        rows += [
            [r["label"], f"collection (drops {r['dropped']})", f"{r['collect']:.2f}",
             f"{r['collect'] / base['collect']:.2f} × filesystem"],
            [r["label"], "mirror not serving (the collection's figure)", f"{r['unavailable']:.2f}",
             f"{r['unavailable'] / base['unavailable']:.2f} × filesystem"],
            [r["label"], f"longest `/v2/` gap seen ({r['probe_failures']} failed probes)", f"{r['gap']:.2f}",
             f"{r['gap'] / base['gap']:.2f} × filesystem" if base["gap"] else "-"],
            [r["label"], f"freed: usage {r['before'] / MB:.0f} -> {r['after'] / MB:.0f} MB, expected "
                         f"{r['expected'] / MB:.0f} MB", "", f"{ratio:.3f} of expected"],
        ]
        if not r["order_ok"]:
            print(f"error: {r['label']}: wrong images dropped:\n" + "\n".join(r["log"]))
    print(table(["storage", "case", "seconds", "ratio"], rows, "llrr"))
    print()
    print("pushing: " + ", ".join(f"{r['label']} in {r['push']:.0f} s" for r in results))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
