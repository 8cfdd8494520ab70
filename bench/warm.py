#!/usr/bin/env python3
"""The warm engine against its limits (issue 4's benchmarks).

On one machine, in one run, with a throttled upstream (the shared link,
tests/support/link.py, in front of a local registry: default 50 MB/s
shared by all connections, 20 ms per connection and per request) and
with the same registry unthrottled, for a set of 8 images with shared layers (a base
layer in all of them, a second one in half of them, one layer of its own
each; incompressible, so bytes on the wire = bytes stored):

  link limit     the unique bytes of the set / the link's rate: what the
                 link could carry at best (throttled only)
  limit          the unique bytes of the set fetched with parallel plain
                 HTTP GETs (4 threads, `requests`, sha256 checked) straight
                 from the upstream through the same throttle: what plain
                 clients reach on this machine
  warm           `warm.warm(settings, log, client)` on a fresh mirror
                 (`install.start_mirrors` first, untimed): the real thing,
                 pins and the lifecycle's collection included (the mirror
                 keeps serving: pins are a file, and the collection stops
                 the mirror only when the policy drops something); its fetch
                 phase and what follows it (pins, collection, summary) are
                 also shown apart (told apart by the log lines' times)
  docker pulls   what the reference scripts do: `docker pull` of each image
                 in turn through another fresh mirror (pulled images removed
                 afterwards)

then, with everything cached, a re-warm of 20 images (the 8 plus 12 small
ones sharing a layer), `docker pull` of the 8 through the warm mirror vs
straight from the throttled upstream, and `--archive` (mirror/archive.py,
when it exists) vs `docker save | gzip` of the same images.

Targets (the issues'): through the link, the cold warm at least 0.9 of
the link limit's throughput, with at most 1.02x the unique bytes on the
link (each blob once); unthrottled, at least 0.8 of the parallel GETs';
warm >= 3x faster than the docker-pull loop; re-warm of 20 images under
1 s. Throughputs count the unique bytes of the set (each blob once),
whatever the upstream was really asked for; the "upstream" column shows
what went through the throttle (from the link's byte counter).

    python3 bench/warm.py [--scale 1.0] [--rate MBPS] [--latency MS] [--registry-image REF]
    python3 bench/warm.py --cold N [--scale ...]   # the cold warm alone, N rounds (bench/warm_cold.py)

--registry-image runs the mirrors on that image instead of the product's
default (the engine built here): e.g. docker-mirror/registry:2.8.2-offline,
Debian's unpatched build, which the warm takes the careful way.

--scale 1.0: images of 32-52 MB, 172 MB unique (--scale 0.25 for a quick
run). Images are pushed once per run. Exits 1 when a target is missed or
a step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (sys.path)
from common import MB, Stopwatch, docker_client, median, registry_image, table

import warm_set  # bench/warm_set.py: the image set, the limit, mirrors, the timed warm
from warm_set import (BASE_MB, BIG, GET_THREADS, HALF_MB, all_refs, big_refs, log_to, new_mirror,
                      parallel_get, push_images, timed_warm, write_list)
from support.mirrors import Mirror  # noqa: E402
from support.throttle import ThrottlingProxy  # noqa: E402
from support.upstream import UpstreamRegistry  # noqa: E402

REWARM_RUNS = 3


# ------------------------------------------------------------------ measurements

def not_cached(mirror: Mirror, per_repository: dict[str, list[str]], settle: float = 5.0) -> list[str]:
    """'repository@digest' of the set's blobs the mirror cannot serve from its own storage.

    Read from the storage tree as the proxy reads it: the blob's data, and
    its link in the repository (without the link the proxy goes upstream
    for it, and fails with the upstream down). Polled for up to `settle`
    seconds, since the proxy stores a blob in the background.
    """
    v2 = mirror.storage() / "docker/registry/v2"

    def missing():
        found = []
        for repository, digests in per_repository.items():
            for digest in digests:
                algorithm, hexdigest = digest.split(":", 1)
                link = v2 / "repositories" / repository / "_layers" / algorithm / hexdigest / "link"
                data = v2 / "blobs" / algorithm / hexdigest[:2] / hexdigest / "data"
                if not (link.exists() and data.exists()):
                    found.append(f"{repository}@{digest[:19]}")
        return found

    deadline = time.monotonic() + settle
    found = missing()
    while found and time.monotonic() < deadline:
        time.sleep(0.25)
        found = missing()
    return found


def docker_pull_loop(client, port: int, refs: list[str], pulled: set[str]) -> float:
    """Seconds for `docker pull` of each ref in turn from 127.0.0.1:port."""
    with Stopwatch() as sw:
        for ref in refs:
            repository, tag = ref.rsplit(":", 1)
            client.images.pull(f"127.0.0.1:{port}/{repository}", tag=tag)
            pulled.add(f"127.0.0.1:{port}/{ref}")
    return sw.seconds


def remove_images(client, pulled: set[str]) -> None:
    for ref in sorted(pulled):
        with contextlib.suppress(Exception):
            client.images.remove(ref, force=True)
    pulled.clear()


class Counter:
    """Bytes that went down through the throttle during a block (0 when unthrottled)."""

    def __init__(self, proxy: ThrottlingProxy | None):
        self.proxy = proxy

    @contextlib.contextmanager
    def count(self, into: dict, key: str):
        before = self.proxy.bytes_down if self.proxy else 0
        yield
        into[key] = (self.proxy.bytes_down - before) if self.proxy else None


# ------------------------------------------------------------------ the run

def one_upstream(label: str, remote: str, proxy, blobs, per_repository, tmp: Path, client, made: list,
                 pulled: set) -> dict:
    """limit, cold warm, docker-pull loop, re-warm of 20 against one upstream URL."""
    found: dict = {"label": label, "up": {}}
    counter = Counter(proxy)
    with counter.count(found["up"], "limit"):
        found["limit"] = parallel_get(remote, blobs)

    listing = tmp / f"{label}-images.txt"
    write_list(listing, big_refs())
    mirror = new_mirror(tmp, f"{label}-warm", remote, listing, client, made)
    with counter.count(found["up"], "warm"):
        found["warm"] = timed_warm(mirror, client)
    found["mirror"] = mirror
    found["not_cached"] = not_cached(mirror, per_repository)

    empty = tmp / f"{label}-none.txt"
    write_list(empty, [])
    cold = new_mirror(tmp, f"{label}-pulls", remote, empty, client, made)
    with counter.count(found["up"], "pulls"):
        found["pulls"] = docker_pull_loop(client, cold.port, big_refs(), pulled)
    remove_images(client, pulled)
    cold.remove(client)

    write_list(listing, all_refs())
    timed_warm(mirror, client)  # caches the 12 small ones (and pins them)
    found["rewarm"] = []
    for _ in range(REWARM_RUNS):  # a run that fetched (what the last warm left unlinked) is shown apart
        with counter.count(found["up"], "rewarm"):
            found["rewarm"].append(timed_warm(mirror, client))
    return found


def archive_vs_save(client, mirror: Mirror, listing: Path, tmp: Path, image_bytes: int,
                    pulled: set) -> list[list]:
    """--archive of the 8 vs `docker save | gzip` of the same 8 (pulled from the warm mirror)."""
    write_list(listing, big_refs())
    refs = [f"127.0.0.1:{mirror.port}/{ref}" for ref in big_refs()]
    if not all(ref in pulled for ref in refs):
        docker_pull_loop(client, mirror.port, big_refs(), pulled)
    out = tmp / "save.tar.gz"
    command = "set -o pipefail; docker save " + " ".join(refs) + f" | gzip -c > {out}"
    with Stopwatch() as save:
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"docker save | gzip failed: {done.stderr}")
    save_rate = image_bytes / save.seconds / MB
    rows = [["`docker save \\| gzip` (8 images)", f"{save.seconds:.2f}", f"{save_rate:.1f}",
             f"{out.stat().st_size / MB:.0f}", "1.00"]]
    out.unlink()

    try:
        archive = importlib.import_module("mirror.services.archive")
        archive_images = archive.archive_images
    except (ImportError, AttributeError):
        rows.append(["`--archive` (8 images)", "n/a (archive not available)", "", "", ""])
        return rows
    archives = mirror.root / "images" / "archives"
    before = {p: p.stat().st_size for p in archives.rglob("*") if p.is_file()} if archives.exists() else {}
    lines: list = []
    try:
        with Stopwatch() as made:
            archive_images(mirror.settings, client=client, log=log_to(lines), prune=False)
    except Exception as err:  # a step of someone else's module: report it, keep the other figures
        rows.append(["`--archive` (8 images)", f"failed: {err.__class__.__name__}: {err}", "", "", ""])
        return rows
    written = sum(p.stat().st_size for p in archives.rglob("*")
                  if p.is_file() and before.get(p) != p.stat().st_size)
    rate = image_bytes / made.seconds / MB
    rows.append(["`--archive` (8 images)", f"{made.seconds:.2f}", f"{rate:.1f}", f"{written / MB:.0f}",
                 f"{rate / save_rate:.2f}"])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="image size factor (default 1.0: 32-52 MB images; 0.25 for a quick run)")
    parser.add_argument("--rate", type=float, default=50.0, help="throttle, MB/s (default 50)")
    parser.add_argument("--latency", type=float, default=20.0,
                        help="throttle, ms per connection and per request (default 20)")
    parser.add_argument("--concurrency", type=int, default=warm_set.CONCURRENCY,
                        help=f"DOCKER_MIRROR_PULL_CONCURRENCY (default {warm_set.CONCURRENCY})")
    parser.add_argument("--compare", help="e.g. 4,8: only the cold warm, at each concurrency in turn")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --compare (default 3)")
    parser.add_argument("--cold", type=int, metavar="N",
                        help="only the cold warm through the link, N rounds, against the link's limit")
    parser.add_argument("--registry-image", metavar="REF",
                        help="run the mirrors on this image instead of the product's default (the engine "
                             "built here)")
    args = parser.parse_args(argv)
    # Set where new_mirror reads them, before any mirror is made (this run's and its modes').
    warm_set.CONCURRENCY = args.concurrency
    warm_set.OVERRIDES = (dict(DOCKER_MIRROR_REGISTRY_BUILT=False, DOCKER_MIRROR_REGISTRY_IMAGE=args.registry_image)
                          if args.registry_image else {})
    if not 0.01 <= args.scale <= 4:
        parser.error("--scale must be between 0.01 and 4")
    if args.compare:
        from warm_compare import compare  # bench/warm_compare.py
        return compare([int(v) for v in args.compare.split(",")], args.rounds, args)
    if args.cold is not None:
        if not 1 <= args.cold <= 20:
            parser.error(f"--cold {args.cold}: between 1 and 20 rounds")
        from warm_cold import cold  # bench/warm_cold.py
        return cold(args)

    client = docker_client()
    made: list[Mirror] = []
    pulled: set[str] = set()
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="warm-bench-") as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        try:
            hub = stack.enter_context(UpstreamRegistry(tmp / "hub"))
            throttle = stack.enter_context(ThrottlingProxy(("127.0.0.1", hub.port), args.rate * MB,
                                                           args.latency / 1000))
            _, image_note = registry_image(client, Mirror(tmp / "probe", hub.url, **warm_set.OVERRIDES).settings.registry_image)
            with Stopwatch() as push:
                blobs, per_repository = push_images(hub, args.scale)
            unique = sum(b["size"] for b in blobs.values())
            results = [one_upstream(label, url, proxy, blobs, per_repository, tmp, client, made, pulled)
                       for label, url, proxy in (("throttled", throttle.url, throttle),
                                                 ("unthrottled", hub.url, None))]

            # docker pull of the 8: through the warm (throttled-upstream) mirror vs the throttle itself
            warm_mirror = results[0]["mirror"]
            via_throttle = docker_pull_loop(client, throttle.port, big_refs(), pulled)
            remove_images(client, pulled)
            via_mirror = docker_pull_loop(client, warm_mirror.port, big_refs(), pulled)
            archive_rows = archive_vs_save(client, warm_mirror, tmp / "throttled-images.txt", tmp,
                                           unique, pulled)
        finally:
            remove_images(client, pulled)
            for mirror in made:
                with contextlib.suppress(Exception):
                    mirror.remove(client)
    wall = time.perf_counter() - wall

    sizes = [BASE_MB * args.scale + (HALF_MB * args.scale if half else 0) + own * args.scale
             for _, half, own in BIG]
    print(f"warm engine, {len(BIG)} images of {min(sizes):.0f}-{max(sizes):.0f} MB "
          f"({unique / MB:.0f} MB unique; --scale {args.scale}), pull concurrency {warm_set.CONCURRENCY}; "
          f"throttle {args.rate:.0f} MB/s + {args.latency:.0f} ms/connection and /request; {image_note}; "
          f"push {push.seconds:.1f} s, {wall:.0f} s in all; MB = 10^6 bytes")
    print()
    ok = True
    rows, verdicts = [], []
    for r in results:
        # Through the link the ceiling is the link itself; unthrottled, what plain clients reach.
        link_limit = unique / (args.rate * MB) if r["label"] == "throttled" else None
        limit_rate = unique / (link_limit or r["limit"]) / MB
        w = r["warm"]
        up = r["up"]

        def upstream(key):
            return f"{up[key] / MB:.0f}" if up.get(key) is not None else "-"

        def row(case, seconds, up_key=None):
            rate = unique / seconds / MB
            return [r["label"], case, f"{seconds:.2f}", f"{rate:.1f}", upstream(up_key) if up_key else "",
                    f"{rate / limit_rate:.2f}"]

        rows += ([row("link limit: unique bytes / rate", link_limit)] if link_limit else []) + [
                 row(f"limit: parallel GETs ({GET_THREADS} threads)", r["limit"], "limit"),
                 row("cold warm (warm.warm, pins and collection included)", w.total, "warm"),
                 row("  fetch phase", w.fetch),
                 [r["label"], f"  pins + collection ({w.collected})", f"{w.after:.2f}", "", "", ""],
                 row("docker pull loop, cold mirror", r["pulls"], "pulls")]
        whole, fetch = w.total / (link_limit or r["limit"]), w.fetch / (link_limit or r["limit"])
        target, limit_name = (0.9, "the link limit's") if link_limit else (0.8, "the parallel GETs'")
        speedup = r["pulls"] / w.total
        clean = [p for p in r["rewarm"] if not p.fetched_images] or r["rewarm"]
        rewarm = median([p.total for p in clean])
        refetched = [f"run {i + 1} re-fetched blobs for {p.fetched_images} image(s) ({p.total:.2f} s)"
                     for i, p in enumerate(r["rewarm"]) if p.fetched_images]
        missing = r["not_cached"]
        checks = [(1 / whole >= target, "UNDER", f"{r['label']}: cold warm at {1 / whole:.2f} of {limit_name} "
                                        f"throughput (fetch phase alone {1 / fetch:.2f}; target >= {target})"),
                  (speedup >= 3, "UNDER", f"{r['label']}: cold warm {speedup:.2f}x faster than the docker pull "
                                 f"loop (target >= 3x)"),
                  (rewarm < 1.0, "OVER", f"{r['label']}: re-warm of {len(all_refs())} images, all cached: median "
                                 f"{rewarm:.3f} s of {len(clean)} (fetch phase "
                                 f"{median([p.fetch for p in clean]):.3f} s; target < 1 s)"
                                 + (f"; {'; '.join(refetched)}" if refetched else "")),
                  (not missing, "MISSING", f"{r['label']}: blobs of the {len(BIG)} images the mirror cannot serve "
                                           f"from its storage after the cold warm said ok: {len(missing)}"
                                           + (f" ({', '.join(missing)})" if missing else ""))]
        if up.get("warm") is not None:
            checks.insert(1, (up["warm"] <= 1.02 * unique, "OVER",
                              f"{r['label']}: cold warm put {up['warm'] / unique:.3f}x the unique bytes on the "
                              f"link (each blob once: target <= 1.02x)"))
        for good, bad, text in checks:
            ok = ok and good
            verdicts.append(f"- {'OK' if good else bad}: {text}")
    print(table(["upstream", "case", "seconds", "MB/s (unique)", "upstream MB",
                 "× limit (throttled: the link's; else the GETs')"], rows, "llrrrr"))
    print()
    print("\n".join(verdicts))
    print()
    print(table(["docker pull of the 8 images (throttled upstream)", "seconds", "ratio"],
                [["straight from the throttled upstream", f"{via_throttle:.2f}", "1.00"],
                 ["through the warm mirror", f"{via_mirror:.2f}", f"{via_mirror / via_throttle:.2f}"]],
                "lrr"))
    print()
    print(table(["archive", "seconds", "MB/s (image bytes)", "output MB", "× docker save rate"],
                archive_rows, "lrrrr"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
