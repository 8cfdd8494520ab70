#!/usr/bin/env python3
"""How long `make olddefconfig` takes for each kind of probed registry address.

Kconfig probes DOCKER_MIRROR_PROBE_ADDRESS (GET /v2/, bounded to 0.3 s) while
it parses the tree, so every `make olddefconfig` pays for the probe. This
times the real `make olddefconfig`, from the repo root, against:

  reachable  a real registry (/usr/bin/docker-registry) answering on loopback
  refused    a free loopback port with nothing listening (the baseline: the
             probe fails at once, so this is the cost of make + Kconfig alone)
  dropped    an address whose SYNs are dropped (tests/support/netfaults.py):
             the probe runs into its timeout

Runs are interleaved (one of each case per round, after a warm-up round) so
that drift on the machine hits every case alike. Each case has its own
KCONFIG_CONFIG in a temporary directory, seeded by `defconfig default`.

    python3 bench/olddefconfig.py [--runs N] [--bound SECONDS]

Exits 1 when the dropped case's median is over the bound (default 1.0 s),
or when a run fails or a probe reports the wrong answer.
"""

import argparse
import contextlib
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from mirror.net import probes  # noqa: E402
from support import netfaults  # noqa: E402

try:
    from support.upstream import UpstreamRegistry  # noqa: E402
except ImportError:
    UpstreamRegistry = None

REGISTRY_BIN = "/usr/bin/docker-registry"
PROBE_PATH = "/nonexistent/docker-mirror-bench"  # the directory probe: constant and cheap
RUNNING_LINE = "CONFIG_HOST_HAS_DOCKER_MIRROR_RUNNING=y"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answers(host: str, port: int, timeout: float = 15.0, proc=None):
    deadline = time.monotonic() + timeout
    while not probes.registry_answers(host, port, timeout=0.5):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{REGISTRY_BIN} exited {proc.returncode} before answering")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no registry answering on {host}:{port} after {timeout} s")
        time.sleep(0.05)


@contextlib.contextmanager
def own_registry(workdir: Path):
    """/usr/bin/docker-registry on a free loopback port, with a minimal config."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        raise RuntimeError(f"{REGISTRY_BIN} is missing (apt-get install docker-registry)")
    port = free_port()
    storage = workdir / "registry-storage"
    storage.mkdir()
    config = workdir / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_answers("127.0.0.1", port, proc=proc)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def reachable_address(workdir: Path):
    if UpstreamRegistry is None:
        with own_registry(workdir) as address:
            yield address, "own docker-registry"
        return
    storage = workdir / "upstream-storage"
    storage.mkdir()
    registry = UpstreamRegistry(storage)
    with registry:
        parsed = urllib.parse.urlsplit(registry.url)
        host, port = parsed.hostname, parsed.port
        wait_until_answers(host, port)
        yield (host, port), "tests/support/upstream.py"


def make_olddefconfig(config: Path, address: str) -> float:
    env = {**os.environ, "KCONFIG_CONFIG": str(config),
           "DOCKER_MIRROR_PROBE_ADDRESS": address, "DOCKER_MIRROR_PROBE_PATH": PROBE_PATH}
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # when run from make itself
        env.pop(name, None)
    start = time.perf_counter()
    result = subprocess.run(["make", "--no-print-directory", "olddefconfig"], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"make olddefconfig ({address}) exited {result.returncode}:\n"
                           f"{result.stdout}{result.stderr}")
    return elapsed


def p90(samples: list[float]) -> float:
    """Nearest-rank 90th percentile (with 10 runs: the 9th fastest)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per case (default 10)")
    parser.add_argument("--bound", type=float, default=1.0,
                        help="most the dropped case's median may take, in s (default 1.0)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if shutil.which("make") is None:
        print("error: make is not installed", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="olddefconfig-bench-") as tmp, \
            contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        (reach_host, reach_port), registry_kind = stack.enter_context(reachable_address(workdir))
        drop_host, drop_port = stack.enter_context(netfaults.dropping_address())
        cases = {  # name: (probe address, whether the probe must find a registry)
            "reachable": (f"{reach_host}:{reach_port}", True),
            "refused": (f"127.0.0.1:{free_port()}", False),
            "dropped": (f"{drop_host}:{drop_port}", False),
        }
        what = {"reachable": f"registry answering /v2/ ({registry_kind})",
                "refused": "nothing listening (RST)",
                "dropped": "SYNs dropped (no answer)"}

        seed = workdir / "seed.config"
        seeded = subprocess.run(
            [sys.executable, "-m", "mirror", "--config", str(seed), "config", "defconfig", "default"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
            env={**os.environ, "DOCKER_MIRROR_PROBE_ADDRESS": cases["refused"][0],
                 "DOCKER_MIRROR_PROBE_PATH": PROBE_PATH})
        if seeded.returncode != 0:
            print(f"error: defconfig default failed:\n{seeded.stdout}{seeded.stderr}", file=sys.stderr)
            return 2
        configs = {}
        for name in cases:
            configs[name] = workdir / f"{name}.config"
            shutil.copyfile(seed, configs[name])

        times: dict[str, list[float]] = {name: [] for name in cases}
        wall = time.perf_counter()
        for round_ in range(args.runs + 1):  # round 0 warms up (page cache, .pyc) and is dropped
            for name, (address, _) in cases.items():
                elapsed = make_olddefconfig(configs[name], address)
                if round_:
                    times[name].append(elapsed)
        wall = time.perf_counter() - wall

        wrong = [name for name, (_, running) in cases.items()
                 if (RUNNING_LINE in configs[name].read_text().splitlines()) != running]

    base = statistics.median(times["refused"])
    rows = []
    for name in cases:
        median = statistics.median(times[name])
        rows.append((name, what[name], median, p90(times[name]), median / base))

    print(f"make olddefconfig, {args.runs} runs per case (interleaved, after 1 warm-up round), "
          f"{wall:.1f} s in all; probe timeout {probes.PROBE_TIMEOUT} s")
    print()
    print("| probe target | what is there | median (s) | p90 (s) | × refused median |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, description, median, tail, ratio in rows:
        print(f"| {name} | {description} | {median:.3f} | {tail:.3f} | {ratio:.2f} |")
    print()
    dropped = statistics.median(times["dropped"])
    verdict = "OK" if dropped <= args.bound else "OVER"
    print(f"dropped: median {dropped:.3f} s (bound {args.bound:.1f} s): {verdict}"
          f"  [+{dropped - base:.3f} s over refused]")
    for name in wrong:
        print(f"error: {name}: the probe said {'no' if cases[name][1] else 'yes'} "
              f"({RUNNING_LINE} {'missing' if cases[name][1] else 'present'})", file=sys.stderr)
    return 0 if verdict == "OK" and not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
