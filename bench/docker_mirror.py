#!/usr/bin/env python3
"""How long `make docker-mirror` takes cold, and re-run with nothing changed.

Times the command `make docker-mirror` runs, `python3 -m mirror docker-mirror`,
from the repo root, against a local upstream registry standing in for
Docker Hub (the proxy pings its upstream at start), in two cases:

  cold     a fresh mirror directory and no containers of this mirror; the
           registry image is already present locally (made present before
           any timing: no pull and no offline build is timed)
  re-run   the same command again at once, nothing changed: every step
           compares and finds nothing to do

Each against a baseline measured in the same process, in the same round:

  bare docker run   the same registry image started with the Docker SDK
                    (`client.containers.run(..., network_mode="host")`, a
                    minimal plain-registry config) until /v2/ answers, polled
                    by the same function the product polls with: the floor
                    for a cold start
  check             `python3 -m mirror check`: interpreter start + settings
                    load, the floor for any CLI call

Rounds are interleaved (cold, re-run, check, bare in each) after one
warm-up round that is dropped. Each round's mirror has its own container
prefix (tests/support/mirrors.py) and is removed at the end of the round.
The refresh (DOCKER_MIRROR_REFRESH) is off, as in the test mirrors: no
background refresh is started, so "cold" is the registry setup alone.

    python3 bench/docker_mirror.py [--runs N] [--bound SECONDS]

Exits 1 when the re-run's median is over the bound (default 2.0 s, the
issue's), or when a run fails.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (sys.path)
from common import Stopwatch, docker_client, median, p90, registry_image, table

from docker.types import Mount  # noqa: E402

from mirror.model.endpoint import Endpoint  # noqa: E402
from mirror.net.probes import wait_until_answering  # noqa: E402
from support.mirrors import Mirror  # noqa: E402
from support.upstream import UpstreamRegistry, free_port  # noqa: E402

BARE_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: 127.0.0.1:{port}
"""


def bare_docker_run(client, image, workdir: Path, name: str) -> float:
    """Seconds from `containers.run` until the registry answers /v2/ (then removed)."""
    port = free_port()
    workdir.mkdir(parents=True)
    config = workdir / "config.yml"
    config.write_text(BARE_CONFIG.format(port=port))
    storage = workdir / "storage"
    storage.mkdir()
    container = None
    try:
        with Stopwatch() as sw:
            container = client.containers.run(
                image.image_id, name=name, detach=True, network_mode="host",
                mounts=[Mount(image.config_path, str(config), type="bind", read_only=True),
                        Mount("/var/lib/registry", str(storage), type="bind")])
            answered = wait_until_answering(Endpoint.of("127.0.0.1", port, tls=False), 20.0)
        if not answered:
            raise RuntimeError(f"bare registry container {name} did not answer on 127.0.0.1:{port}")
        return sw.seconds
    finally:
        if container is not None:
            container.remove(force=True, v=True)


def timed_cli(mirror: Mirror, *args) -> tuple[float, str]:
    with Stopwatch() as sw:
        result = mirror.run(*args, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"python3 -m mirror {' '.join(args)} exited {result.returncode}:\n"
                           f"{result.stdout}{result.stderr}")
    return sw.seconds, result.stdout


def one_round(client, image, hub_url: str, workdir: Path) -> dict[str, float]:
    mirror = Mirror(workdir / "mirror", hub_url)  # .config written before timing
    try:
        cold, out = timed_cli(mirror, "docker-mirror")
        if "(created)" not in out:
            raise RuntimeError(f"cold run did not create the mirror:\n{out}")
        again, out = timed_cli(mirror, "docker-mirror")
        if "(unchanged)" not in out:
            raise RuntimeError(f"re-run changed something:\n{out}")
        check, _ = timed_cli(mirror, "check")
        bare = bare_docker_run(client, image, workdir / "bare", f"{mirror.prefix}-bare")
        return {"cold": cold, "rerun": again, "check": check, "bare": bare}
    finally:
        mirror.remove(client)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case (default 5)")
    parser.add_argument("--bound", type=float, default=2.0,
                        help="most the re-run's median may take, in s (default 2.0)")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 100:
        parser.error("--runs must be between 1 and 100")

    client = docker_client()
    times: dict[str, list[float]] = {"cold": [], "rerun": [], "check": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="docker-mirror-bench-") as tmp, \
            contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        hub = stack.enter_context(UpstreamRegistry(tmp / "hub"))
        # The settings of a throwaway mirror name the image the product will run.
        probe = Mirror(tmp / "probe", hub.url)
        image, image_note = registry_image(client, probe.settings.registry_image)
        wall = time.perf_counter()
        for round_ in range(args.runs + 1):  # round 0 warms up (page cache, .pyc) and is dropped
            measured = one_round(client, image, hub.url, tmp / f"round-{round_}")
            if round_:
                for name, seconds in measured.items():
                    times[name].append(seconds)
        wall = time.perf_counter() - wall

    cases = [
        ("cold", "`python3 -m mirror docker-mirror`, fresh dir, no containers", "bare"),
        ("bare", "baseline: bare `docker run` of the registry image until /v2/ answers", "bare"),
        ("rerun", "`python3 -m mirror docker-mirror` again, nothing changed", "check"),
        ("check", "baseline: `python3 -m mirror check` (interpreter + settings load)", "check"),
    ]
    rows = []
    for name, what, base in cases:
        ratio = median(times[name]) / median(times[base])
        rows.append([name, what, f"{median(times[name]):.3f}", f"{p90(times[name]):.3f}",
                     f"{ratio:.2f} × {base}"])
    print(f"make docker-mirror (one Docker Hub mirror, upstream: a local registry on loopback), "
          f"{args.runs} runs per case (interleaved, after 1 warm-up round), {wall:.1f} s in all; "
          f"{image_note}; refresh off")
    print()
    print(table(["case", "what", "median (s)", "p90 (s)", "median ratio"], rows, "llrrr"))
    print()
    rerun = median(times["rerun"])
    verdict = "OK" if rerun <= args.bound else "OVER"
    print(f"re-run: median {rerun:.3f} s, p90 {p90(times['rerun']):.3f} s (bound {args.bound:.1f} s): "
          f"{verdict}  [+{rerun - median(times['check']):.3f} s over check]")
    print(f"cold: median {median(times['cold']):.3f} s  "
          f"[+{median(times['cold']) - median(times['bare']):.3f} s over a bare docker run]")
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
