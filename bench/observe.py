#!/usr/bin/env python3
"""What the metrics and status page service costs per request, against what it reads.

A test mirror (tests/support/mirrors.py) in front of a local upstream holding
N images (default 20), each pulled once through the mirror over the registry
API (so the request log has N manifest and 2N blob lines). Then, interleaved,
after one dropped warm-up round:

  status document   `status.gather(..., headroom=False)`: the same document
                    `make docker-mirror-status --json` builds, the baseline
  GET /metrics      a scrape of the service (status document + traffic totals
                    + the registry's own metrics re-exported)
  GET /             the status page
  sample            one sample (request log read from its cursor, history)
  raw log read      the container's whole log, as the Docker SDK returns it:
                    the floor for a sample

    python3 bench/observe.py [--runs N] [--images N]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import common  # noqa: F401  (sys.path)
from common import docker_client, median, p90, registry_image, table

import requests  # noqa: E402

from mirror.services import install, observe, observe_serve, status  # noqa: E402
from support.configs import with_status_page  # noqa: E402
from mirror.model import manifests  # noqa: E402
from support.mirrors import Mirror  # noqa: E402
from support.upstream import UpstreamRegistry, make_layer, push_image  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pull(base: str, repository: str) -> None:
    body = requests.get(f"{base}/v2/{repository}/manifests/latest", timeout=30,
                        headers={"Accept": ", ".join(manifests.MANIFEST_TYPES)}).json()
    for digest in [body["config"]["digest"], *(layer["digest"] for layer in body["layers"])]:
        requests.get(f"{base}/v2/{repository}/blobs/{digest}", timeout=30).raise_for_status()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    client = docker_client()
    with tempfile.TemporaryDirectory(prefix="bench-observe-") as tmp, \
            UpstreamRegistry(Path(tmp) / "hub") as hub:
        m = Mirror(Path(tmp) / "m", hub.url)
        registry_image(client, m.settings.registry_image)
        try:
            install.start_mirrors(m.settings, client, log=lambda _: None)
            settings = with_status_page(m.settings)
            observe.sample(settings, client)
            for n in range(args.images):
                push_image(hub.url, f"bench/image{n:02d}", "latest", layers=[make_layer(50_000, n)])
                pull(m.url(), f"bench/image{n:02d}")
            server = observe_serve.make_server(settings)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            url = f"http://127.0.0.1:{settings.observe.port}"
            container = m.container(client)
            cases = {
                "status document (baseline)": lambda: status.gather(settings, client, headroom=False),
                "GET /metrics": lambda: requests.get(f"{url}/metrics", timeout=30).raise_for_status(),
                "GET / (the page)": lambda: requests.get(f"{url}/", timeout=30).raise_for_status(),
                "raw log read (sample floor)": lambda: container.logs(timestamps=True),
                "sample": lambda: observe.sample(settings, client),
            }
            times = {name: [] for name in cases}
            for round_ in range(args.runs + 1):
                for name, fn in cases.items():
                    took = timed(fn)
                    if round_:
                        times[name].append(took)
            server.shutdown()
            server.server_close()
        finally:
            m.remove(client)
    base = median(times["status document (baseline)"])
    floor = median(times["raw log read (sample floor)"])
    rows = []
    for name, samples in times.items():
        ref, label = (floor, "log read") if name == "sample" else (base, "status doc")
        rows.append([name, f"{median(samples) * 1000:.1f}", f"{p90(samples) * 1000:.1f}",
                     f"{median(samples) / ref:.2f} × {label}"])
    print(f"{args.images} images cached and pulled once; {args.runs} runs each\n")
    print(table(["case", "median (ms)", "p90 (ms)", "ratio"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
