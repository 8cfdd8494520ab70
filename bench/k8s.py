#!/usr/bin/env python3
"""What `make docker-mirror-k8s` costs, against `make check` on the same .config.

Both are one `python3 -m mirror` process that reads and validates .config;
`check` stops there (the baseline), `k8s` also renders and writes every
manifest. Timed for the default .config (Docker Hub only) and for every
upstream on s3 with 3 replicas and htpasswd, the runs interleaved (one of each
per round, after a dropped warm-up round). In the same process, the
rendering alone (mirror.services.k8s_manifests.manifests) is timed against rendering each
upstream's registry config for the host (render.registry_config), the part
they share.

    python3 bench/k8s.py [--runs N]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, median, p90, table

from mirror import render
from mirror.services import k8s_manifests as k8s
from mirror.config import settings as settings_module
from mirror.host.credential import _bcrypt
from mirror.model.modes import PULL_THROUGH
from support.configs import write_config

S3 = {"DOCKER_MIRROR_STORAGE_FILESYSTEM": False, "DOCKER_MIRROR_STORAGE_S3": True,
      "DOCKER_MIRROR_S3_ENDPOINT": "http://127.0.0.1:8333", "DOCKER_MIRROR_S3_BUCKET": "mirror-cache",
      "DOCKER_MIRROR_S3_ACCESS_KEY_ID": "AKIDBENCH", "DOCKER_MIRROR_S3_SECRET_KEY": "bench-secret",
      "DOCKER_MIRROR_REPLICAS": 3}
ALL = {"DOCKER_MIRROR_GHCR": True, "DOCKER_MIRROR_QUAY": True, "DOCKER_MIRROR_K8S": True}


def timed(argv) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def in_process(loaded, rounds: int) -> tuple[float, float]:
    secrets = k8s.ClusterSecrets("x" * 43, htpasswd="", warm_user="", warm_password="")
    host = manifests = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for upstream in loaded.upstreams:
            render.registry_config(loaded, upstream, major=2, mode=PULL_THROUGH, http_secret="x")
        host += time.perf_counter() - start
        start = time.perf_counter()
        k8s.manifests(loaded, k8s.Options(), secrets)
        manifests += time.perf_counter() - start
    return host / rounds, manifests / rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    rows, inner = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        users = tmp / "htpasswd"
        users.write_text(f"alice:{_bcrypt('bench')}\n")
        cases = {"default": {}, "4 upstreams, s3, 3 replicas, htpasswd": {
            **S3, **ALL, "DOCKER_MIRROR_HTPASSWD": True, "DOCKER_MIRROR_HTPASSWD_PATH": str(users)}}
        for number, (name, overrides) in enumerate(cases.items()):
            config = write_config(tmp / f"{number}.config", **overrides)
            base = [sys.executable, "-m", "mirror", "--config", str(config)]
            argvs = {"check": base + ["check"], "k8s": base + ["k8s", "--out", str(tmp / f"out{number}")]}
            samples = {case: [] for case in argvs}
            for round_ in range(args.runs + 1):
                for case, argv in argvs.items():
                    elapsed = timed(argv)
                    if round_:
                        samples[case].append(elapsed)
            check = median(samples["check"])
            for case in argvs:
                rows.append([name, f"`python3 -m mirror {case}`", f"{median(samples[case]):.3f}",
                             f"{p90(samples[case]):.3f}", f"{median(samples[case]) / check:.2f}"])
            loaded = settings_module.load(config)
            host, manifests = in_process(loaded, 50)
            inner.append([name, f"{host * 1000:.2f}", f"{manifests * 1000:.2f}", f"{manifests / host:.1f}"])
    print(f"{args.runs} runs each, interleaved; ratio: median against `check` on the same .config\n")
    print(table(["config", "command", "median (s)", "p90 (s)", "× check"], rows, "llrrr"))
    print("\nIn one process, mean of 50 (ms):\n")
    print(table(["config", "host registry configs (baseline)", "all manifests", "× baseline"], inner, "lrrr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
