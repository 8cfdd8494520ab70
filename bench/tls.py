#!/usr/bin/env python3
"""What generated TLS costs: making sure of the certificates, and every request over TLS.

- mirror.host.tls.ensure(), which every setup, keeper check and refresh runs:
  with nothing to do (the common case), the first run (CA and server
  certificate) and a re-issue (names changed), against the baseline of
  loading the settings (which every one of those runs does anyway).
- The product's own registry requests (RegistryAPI.of_mirror, the pinned
  server.crt) to a real registry serving the generated certificate, against
  the same registry's storage served over plain HTTP: N manifest GETs and
  N/10 fetches of a 4 MB blob, rounds interleaved.

    python3 bench/tls.py [--runs N] [--requests N]
"""

import argparse
import dataclasses
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import common  # noqa: F401 - sys.path
import requests

from common import median, p90, table
from mirror.config import settings as settings_mod
from mirror.host import tls
from mirror.model.endpoint import Endpoint
from mirror.net.registry_api import RegistryAPI
from support.configs import write_config
from support.upstream import REGISTRY_BINARY, UpstreamRegistry, free_port, make_layer, push_image


def timed(run, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return samples


def tls_registry(tmp: Path, storage: Path, cert: str, key: str):
    """docker-registry serving `storage` over TLS with the generated certificate."""
    port = free_port()
    config = tmp / "tls.yml"
    config.write_text(json.dumps({
        "version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "bench", "tls": {"certificate": cert, "key": key}}}))
    proc = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if requests.get(f"https://127.0.0.1:{port}/v2/", verify=cert, timeout=2).status_code == 200:
                return proc, port
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the TLS registry did not answer")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = write_config(tmp / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(tmp / "m"),
                              DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_CLIENT_ADDRESS="mirror.lan")
        loaded = settings_mod.load(config)
        rounds = args.runs * 4

        load = timed(lambda: settings_mod.load(config), rounds)

        def first():
            shutil.rmtree(tmp / "m" / "tls", ignore_errors=True)
            tls.ensure(loaded)
        made = timed(first, rounds)
        moved = [dataclasses.replace(loaded, client_address=f"m{i}.lan") for i in range(rounds)]
        reissued = timed(lambda: tls.ensure(moved.pop()), rounds)
        tls.ensure(loaded)
        noop = timed(lambda: tls.ensure(loaded), rounds)
        base = median(load)
        for name, samples in (("load the settings (baseline)", load),
                              ("ensure(): nothing to do", noop),
                              ("ensure(): first run (CA + server certificate)", made),
                              ("ensure(): names changed (server certificate re-issued)", reissued)):
            rows.append([name, f"{median(samples) * 1000:.2f}", f"{p90(samples) * 1000:.2f}",
                         f"{median(samples) / base:.2f} × baseline"])

        with UpstreamRegistry(tmp / "hub") as hub:
            layer = make_layer(4_000_000, "bench")
            push_image(hub.url, "library/bench", "1", layers=[layer])
            proc, port = tls_registry(tmp, hub.storage, loaded.tls_certificate, loaded.tls_key)
            try:
                plain = RegistryAPI(hub.url)
                secure = RegistryAPI.of_mirror(Endpoint.of("127.0.0.1", port, True), loaded.tls_certificate)
                blob = plain.get_manifest("library/bench", "1").json["layers"][0]["digest"]
                cases = [("manifest GET, plain HTTP (baseline)", plain, False),
                         ("manifest GET, TLS (generated certificate pinned)", secure, False),
                         ("4 MB blob, plain HTTP (baseline)", plain, True),
                         ("4 MB blob, TLS", secure, True)]
                samples = {name: [] for name, *_ in cases}
                for round_ in range(args.runs + 1):
                    for name, api, is_blob in cases:
                        start = time.perf_counter()
                        if is_blob:
                            for _ in range(args.requests // 10):
                                api.fetch_blob("library/bench", blob)
                        else:
                            for _ in range(args.requests):
                                api.get_manifest("library/bench", "1")
                        if round_:  # the first round warms up
                            samples[name].append(time.perf_counter() - start)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        for index, (name, _, is_blob) in enumerate(cases):
            count = args.requests // 10 if is_blob else args.requests
            per = median(samples[name]) / count * 1000
            baseline = median(samples[cases[index - index % 2][0]]) / count * 1000
            rows.append([name, f"{per:.2f}", f"{p90(samples[name]) / count * 1000:.2f}",
                         f"{per / baseline:.2f} × baseline"])
    print(table(["case", "median ms", "p90 ms", "ratio"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
