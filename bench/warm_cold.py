"""`python3 bench/warm.py --cold N [--scale S] [--registry-image REF]`: the cold warm alone through
the shared link, N times on fresh mirrors, against the link's limit (the set's unique bytes / the
link's rate) and, in the same round, what plain parallel GETs reach; with the bytes that crossed
the link. The quick check of the warm's own changes (README, "Benchmarks")."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import warm_set as bench  # bench/warm_set.py: the image set, the limit, mirrors, the timed warm
from common import MB, docker_client, median, registry_image, table
from support.link import SharedLink
from support.mirrors import Mirror
from support.upstream import UpstreamRegistry

TARGET = 0.9        # of the link's limit (the issue's)
BYTES_TARGET = 1.02  # x the unique bytes on the link


def cold(args) -> int:
    client = docker_client()
    made: list[Mirror] = []
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="warm-cold-") as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        try:
            hub = stack.enter_context(UpstreamRegistry(tmp / "hub"))
            link = stack.enter_context(SharedLink(("127.0.0.1", hub.port), args.rate * MB, args.latency / 1000))
            _, note = registry_image(client, Mirror(tmp / "probe", hub.url, **bench.OVERRIDES).settings.registry_image)
            blobs, _ = bench.push_images(hub, args.scale)
            unique = sum(b["size"] for b in blobs.values())
            listing = tmp / "images.txt"
            bench.write_list(listing, bench.big_refs())
            for n in range(args.cold):
                gets = bench.parallel_get(link.url, blobs)
                mirror = bench.new_mirror(tmp, f"cold-{n}", link.url, listing, client, made)
                link.reset()
                phases = bench.timed_warm(mirror, client)
                counts = link.counts()
                runs.append(dict(total=phases.total, fetch=phases.fetch, gets=gets, bytes=counts.bytes_down,
                                 blob_gets=sum(map(len, counts.blob_gets().values())), blobs=len(blobs)))
                made.remove(mirror)
                mirror.remove(client)
        finally:
            for mirror in made:
                with contextlib.suppress(Exception):
                    mirror.remove(client)
    limit = unique / (args.rate * MB)
    print(f"cold warm of {len(bench.BIG)} images ({unique / MB:.0f} MB unique, {len(blobs)} blobs; --scale "
          f"{args.scale}) through a shared link of {args.rate:g} MB/s, {args.latency:g} ms per connection and "
          f"per request; limit {limit:.2f} s; pull concurrency {bench.CONCURRENCY}; {note}; MB = 10^6 bytes")
    print()
    rows = [[str(i + 1), f"{r['total']:.2f}", f"{limit / r['total']:.3f}", f"{limit / r['fetch']:.3f}",
             f"{limit / r['gets']:.3f}", f"{r['bytes'] / unique:.3f}", f"{r['blob_gets']} of {r['blobs']}"]
            for i, r in enumerate(runs)]
    print(table(["round", "warm s", "× link limit", "fetch phase × limit", "parallel GETs × limit",
                 "link bytes × unique", "blob GETs upstream"], rows))
    print()
    ratio = median([limit / r["total"] for r in runs])
    worst_bytes = max(r["bytes"] for r in runs) / unique
    checks = [(ratio >= TARGET, f"the cold warm at {ratio:.3f} of the link's limit, median of {len(runs)} (target "
                                f">= {TARGET}; plain parallel GETs: {median([limit / r['gets'] for r in runs]):.3f})"),
              (worst_bytes <= BYTES_TARGET, f"at most {worst_bytes:.3f}x the unique bytes on the link (target "
                                            f"<= {BYTES_TARGET}x)")]
    for good, text in checks:
        print(f"- {'OK' if good else 'MISSED'}: {text}")
    return 0 if all(good for good, _ in checks) else 1
