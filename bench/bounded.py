#!/usr/bin/env python3
"""What the overall deadline and size caps of mirror.net.bounded cost per request.

Against a real registry on loopback (/usr/bin/docker-registry, tests/support),
times N manifest GETs and N fetches of a 4 MB blob through RegistryAPI (a
session with its watchdog per request, the body read in capped chunks, the
digest computed) against the baseline of what the code did before: a plain
`requests.get` per request, body read whole. Rounds are interleaved so that
drift on the machine hits both alike.

    python3 bench/bounded.py [--runs N] [--requests N]
"""

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import common  # noqa: F401 - sys.path
import requests

from common import median, p90, table
from mirror.model.manifests import MANIFEST_TYPES
from mirror.net.registry_api import RegistryAPI
from support.upstream import UpstreamRegistry, make_layer, push_image

ACCEPT = {"Accept": ", ".join(MANIFEST_TYPES)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, UpstreamRegistry(Path(tmp) / "hub") as hub:
        layer = make_layer(4_000_000, "bench")
        push_image(hub.url, "library/bench", "1", layers=[layer])
        api = RegistryAPI(hub.url)
        manifest = api.get_manifest("library/bench", "1")
        blob = manifest.json["layers"][0]["digest"]
        url = f"{hub.url}/v2/library/bench"

        def plain_manifests():
            for _ in range(args.requests):
                answer = requests.get(f"{url}/manifests/1", headers=ACCEPT, timeout=30)
                hashlib.sha256(answer.content).hexdigest()

        def bounded_manifests():
            for _ in range(args.requests):
                api.get_manifest("library/bench", "1")

        def plain_blobs():
            for _ in range(args.requests // 10):
                answer = requests.get(f"{url}/blobs/{blob}", timeout=30, stream=True)
                hasher = hashlib.sha256()
                for chunk in answer.iter_content(1 << 20):
                    hasher.update(chunk)

        def bounded_blobs():
            for _ in range(args.requests // 10):
                api.fetch_blob("library/bench", blob)

        cases = [("manifest GET, plain requests (baseline)", plain_manifests),
                 ("manifest GET, RegistryAPI (bounded)", bounded_manifests),
                 ("4 MB blob, plain requests (baseline)", plain_blobs),
                 ("4 MB blob, RegistryAPI (bounded)", bounded_blobs)]
        samples = {name: [] for name, _ in cases}
        for round_ in range(args.runs + 1):
            for name, run in cases:
                start = time.perf_counter()
                run()
                if round_:  # the first round warms up
                    samples[name].append(time.perf_counter() - start)
    rows = []
    for index, (name, _) in enumerate(cases):
        count = args.requests if index < 2 else args.requests // 10
        per = median(samples[name]) / count * 1000
        base = median(samples[cases[index - index % 2][0]]) / count * 1000
        rows.append([name, f"{per:.2f}", f"{p90(samples[name]) / count * 1000:.2f}", f"{per / base:.2f}"])
    print(table(["case", "median ms/request", "p90 ms/request", "× baseline"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
