"""`python3 bench/warm.py --compare 4,8 [--rounds 3]`: the cold warm alone at each pull
concurrency in turn, against the limit (plain parallel GETs) measured in the same round.
What chose the default DOCKER_MIRROR_PULL_CONCURRENCY (README, "Benchmarks")."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import warm_set as bench  # bench/warm_set.py: the image set, the limit, mirrors, the timed warm
from common import MB, docker_client, median, registry_image, table
from support.mirrors import Mirror
from support.throttle import ThrottlingProxy
from support.upstream import UpstreamRegistry


def compare(values: list[int], rounds: int, args) -> int:
    """--compare 4,8: the cold warm alone at each concurrency, in turns, against the
    limit measured in the same round; medians of `rounds` rounds."""
    client = docker_client()
    made: list[Mirror] = []
    found: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="warm-bench-") as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        try:
            hub = stack.enter_context(UpstreamRegistry(tmp / "hub"))
            throttle = stack.enter_context(ThrottlingProxy(("127.0.0.1", hub.port), args.rate * MB,
                                                           args.latency / 1000))
            registry_image(client, Mirror(tmp / "probe", hub.url).settings.registry_image)
            blobs, _ = bench.push_images(hub, args.scale)
            unique = sum(b["size"] for b in blobs.values())
            listing = tmp / "images.txt"
            bench.write_list(listing, bench.big_refs())
            for n in range(rounds):
                for label, url in (("throttled", throttle.url), ("unthrottled", hub.url)):
                    limit = bench.parallel_get(url, blobs)
                    for value in (values if n % 2 == 0 else values[::-1]):  # neither always goes first
                        bench.CONCURRENCY = value  # what bench.new_mirror configures
                        mirror = bench.new_mirror(tmp, f"{label}-{value}-{n}", url, listing, client, made)
                        seconds = bench.timed_warm(mirror, client).total
                        found.setdefault((label, value), []).append((seconds, limit))
                        mirror.remove(client)
        finally:
            for mirror in made:
                with contextlib.suppress(Exception):
                    mirror.remove(client)
    print(f"cold warm of {len(bench.BIG)} images ({unique / MB:.0f} MB unique), each concurrency in turn, "
          f"{rounds} rounds; limit = {bench.GET_THREADS} parallel plain GETs in the same round")
    print()
    rows = []
    for (label, value), runs in found.items():
        ratios = [limit / seconds for seconds, limit in runs]
        rows.append([label, str(value), f"{median([s for s, _ in runs]):.2f}", f"{median(ratios):.2f}",
                     f"{min(ratios):.2f}-{max(ratios):.2f}"])
    print(table(["upstream", "concurrency", "median s", "median × limit", "range"], rows, "lrrrr"))
    return 0
