#!/usr/bin/env python3
"""The cache's garbage collection (issue 10): how long it takes, how long the mirror does
not answer, and whether it frees what it should.

For each cache size (1 GB and 5 GB of synthetic images by default), a fresh
mirror (a plain registry: pull-through off, so that the images are pushed
straight into its storage through the registry HTTP API, as
tests/support/upstream.py pushes them) is filled with N images: one small
base layer shared by all, and one incompressible layer of its own each
(1 GB: 16 images of about 64 MB; 5 GB: 20 of about 256 MB: fewer, larger
blobs keep the run short). Then, with a size limit of half the cache, the
product's own collection (`lifecycle.collect`, what `make docker-mirror-gc`
and every refresh run) drops the least recently cached half: manifest links
removed, distribution's `garbage-collect` in a container, the mirror stopped
meanwhile. Measured in the same run, on the same storage:

  du             `du -sk` of the storage: a plain walk of the tree (baseline)
  gc dry run     `docker-registry garbage-collect --dry-run` on the host, alone
                 (distribution's mark phase over the same tree: baseline)
  collection     lifecycle.collect, end to end
  unavailable    the collection's own figure (mirror stopped -> answering
                 again), and the longest gap seen by a client asking `/v2/`
                 every 5 ms meanwhile
  freed          the fall of `du` against the bytes the dropped images alone
                 held (their own layer, config and manifest, from what was
                 pushed: the shared base stays)

    python3 bench/gc.py [--sizes 1,5] [--images 16,20]

Exits 1 when the freed bytes are off by more than 2 % or a step fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from common import MB, Stopwatch, docker_client, registry_image, table

from mirror.services import install, lifecycle  # noqa: E402
from mirror.host import storage  # noqa: E402
from support.mirrors import Mirror  # noqa: E402
from support.upstream import _Pusher  # noqa: E402

GB = 1000 * MB
BASE = 4 * MB           # the layer every image shares
PROBE_EVERY = 0.005     # seconds between the client's `/v2/` probes during the collection


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push(url: str, repository: str, layers: list[bytes]) -> int:
    """One image (docker schema 2) through the registry API; the bytes only it holds
    (config, manifest and every layer but the first, the shared base)."""
    pusher = _Pusher(url, repository, "docker")
    try:
        descriptors = [{"mediaType": pusher.types["layer"], "size": len(layer), "digest": pusher.blob(layer)}
                       for layer in layers]
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
                             "config": {}, "bench": repository}).encode()
        _, manifest_size = pusher.manifest({
            "schemaVersion": 2, "mediaType": pusher.types["manifest"],
            "config": {"mediaType": pusher.types["config"], "size": len(config),
                       "digest": pusher.blob(config)},
            "layers": descriptors}, "1")
    finally:
        pusher.http.close()
    return sum(len(layer) for layer in layers[1:]) + len(config) + manifest_size


class Prober:
    """Asks the mirror for `/v2/` every PROBE_EVERY seconds; the longest run of failures."""

    def __init__(self, url: str):
        self.url, self.stop = url + "/v2/", threading.Event()
        self.failed_since: float | None = None
        self.longest = 0.0
        self.failures = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        session = requests.Session()
        while not self.stop.is_set():
            try:
                ok = session.get(self.url, timeout=1).status_code == 200
            except requests.RequestException:
                ok = False
            now = time.perf_counter()
            if ok and self.failed_since is not None:
                self.longest = max(self.longest, now - self.failed_since)
                self.failed_since = None
            elif not ok:
                self.failures += 1
                if self.failed_since is None:
                    self.failed_since = now
            time.sleep(PROBE_EVERY)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=10)


def du(path: Path) -> tuple[int, float]:
    """(bytes, seconds) of `du -sk`."""
    with Stopwatch() as sw:
        out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) * 1024, sw.seconds


def gc_dry_run(storage_dir: Path, tmp: Path) -> float:
    """distribution's garbage-collect --dry-run (mark, and list what it would sweep), alone."""
    config = tmp / "gc-dry-run.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {storage_dir}\n")
    with Stopwatch() as sw:
        subprocess.run([shutil.which("docker-registry") or "/usr/bin/docker-registry", "garbage-collect",
                        "--dry-run", str(config)], capture_output=True, check=True, timeout=1800)
    return sw.seconds


def one_size(client, tmp: Path, size: int, count: int) -> dict:
    mirror = Mirror(tmp / f"gc-{size // GB}g", "http://127.0.0.1:9", DOCKER_MIRROR_PULL_THROUGH_CACHE=False)
    try:
        install.start_mirrors(mirror.settings, client, log=lambda _: None)
        own = (size - BASE) // count
        base = random.Random("base").randbytes(BASE)
        held = {}
        with Stopwatch() as pushing:
            for n in range(count):  # pushed in order: the first ones are the least recently cached
                layer = random.Random(f"{size}-{n}").randbytes(own)
                held[f"bench/img{n:02d}"] = push(mirror.url(), f"bench/img{n:02d}", [base, layer])
                time.sleep(0.01)  # distinct link times, so the order is the push order
        storage_dir = mirror.storage()
        before, du_seconds = du(storage_dir)
        dry_seconds = gc_dry_run(storage_dir, tmp)
        limited = dataclasses.replace(mirror.settings, lifecycle=dataclasses.replace(
            mirror.settings.lifecycle, max_bytes=before // 2))
        lines = []
        with Prober(mirror.url()) as prober, Stopwatch() as collecting:
            done = lifecycle.collect(limited, client, log=lines.append)
        after, _ = du(storage_dir)
        dropped = [e.image.repository for e in done.plan.evictions]
        expected = sum(held[name] for name in dropped)
        order_ok = dropped == sorted(held)[:len(dropped)]
        kept_ok = all(storage.revisions(storage_dir, name) for name in held if name not in dropped)
        return {"size": size, "count": count, "own": own, "push": pushing.seconds, "before": before,
                "after": after, "du": du_seconds, "dry": dry_seconds, "collect": collecting.seconds,
                "unavailable": done.unavailable.get("dockerhub", 0.0), "gap": prober.longest,
                "probe_failures": prober.failures, "dropped": len(dropped), "expected": expected,
                "planned": done.plan.freed, "order_ok": order_ok, "kept_ok": kept_ok, "log": lines}
    finally:
        mirror.remove(client)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5", help="cache sizes in GB (default 1,5)")
    parser.add_argument("--images", default="16,20", help="images per size (default 16,20)")
    args = parser.parse_args(argv)
    sizes = [int(float(s) * GB) for s in args.sizes.split(",")]
    counts = [int(c) for c in args.images.split(",")]
    if len(counts) != len(sizes):
        parser.error("--images needs one count per size")
    client = docker_client()
    with tempfile.TemporaryDirectory(prefix="gc-bench-", dir="/var/tmp") as tmp:
        tmp = Path(tmp)
        _, note = registry_image(client, Mirror(tmp / "probe", "http://127.0.0.1:9").settings.registry_image)
        results = [one_size(client, tmp, size, count) for size, count in zip(sizes, counts)]
    print(f"garbage collection; {note}; half of each cache dropped by a size limit; MB = 10^6 bytes")
    print()
    rows, ok = [], True
    for r in results:
        freed = r["before"] - r["after"]
        ratio = freed / r["expected"] if r["expected"] else 0.0
        ok = ok and abs(ratio - 1) <= 0.02 and r["order_ok"] and r["kept_ok"]
        label = f"{r['size'] / GB:g} GB ({r['count']} x {r['own'] / MB:.0f} MB)"
        rows += [
            [label, "`du -sk` of the storage (baseline)", f"{r['du']:.2f}", "1.00"],
            [label, "`garbage-collect --dry-run` alone", f"{r['dry']:.2f}", f"{r['dry'] / r['du']:.2f}"],
            [label, f"collection (drops {r['dropped']})", f"{r['collect']:.2f}",
             f"{r['collect'] / r['du']:.2f} (× dry run {r['collect'] / r['dry']:.2f})"],
            [label, "mirror stopped (the collection's figure)", f"{r['unavailable']:.2f}",
             f"{r['unavailable'] / r['collect']:.2f} of the collection"],
            [label, f"longest `/v2/` gap seen ({r['probe_failures']} failed probes)", f"{r['gap']:.2f}",
             f"{r['gap'] / r['collect']:.2f} of the collection"],
            [label, f"freed: du {r['before'] / MB:.0f} -> {r['after'] / MB:.0f} MB, expected "
                    f"{r['expected'] / MB:.0f} MB (plan {r['planned'] / MB:.0f} MB)", "",
             f"{ratio:.3f} of expected"],
        ]
        if not (r["order_ok"] and r["kept_ok"]):
            print(f"error: {label}: wrong images dropped or kept:\n" + "\n".join(r["log"]))
    print(table(["cache", "case", "seconds", "ratio"], rows, "llrr"))
    print()
    print("pushing: " + ", ".join(f"{r['size'] / GB:g} GB in {r['push']:.0f} s" for r in results))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
