"""Helpers shared by the benchmarks in bench/ (scripts, not tests).

Puts the repo root and tests/ on sys.path (the benchmarks drive the same
support code as the integration tests: local upstream registries, throttling
proxy, test mirrors with their own container prefix), and holds the small
statistics and markdown helpers every script prints with.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

START_ENGINE = ROOT / "scripts" / "start-docker-engine.sh"
MB = 1_000_000


def p90(samples: list[float]) -> float:
    """Nearest-rank 90th percentile (with 5 runs: the slowest)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def table(header: list[str], rows: list[list], align: str | None = None) -> str:
    """A markdown table; `align` is one letter per column, l or r (default: l then r...)."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def docker_client():
    """The local engine (started with scripts/start-docker-engine.sh when it is not running)."""
    import docker
    import docker.errors

    def connect():
        try:
            client = docker.from_env(timeout=120)
            client.ping()
            return client
        except docker.errors.DockerException:
            return None

    client = connect()
    if client is None and START_ENGINE.exists():
        subprocess.run(["bash", str(START_ENGINE)], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=120)
        client = connect()
    if client is None:
        raise SystemExit("error: no Docker engine answers (scripts/start-docker-engine.sh could not "
                         "start one)")
    return client


def registry_image(client, wanted: str):
    """The registry image the mirror will run, made present before any timing.

    Returns (image, note): note says whether it was already there, so the
    printed results can state what a "cold" run did not have to do.
    """
    from mirror.engine import build
    from mirror.engine import registry_image as ri

    before = {i.id for i in client.images.list()}
    image = ri.ensure_registry_image(client, wanted, log=lambda _: None)
    how = "already present locally" if image.image_id in before else "built offline before timing"
    labels = client.images.get(image.ref).labels or {}
    if labels.get(build.KEY_LABEL):  # the engine built here: say which patches the figures are for
        offline = (f" (the engine built here, key {labels[build.KEY_LABEL][:12]}, product patches: "
                   f"{labels.get(build.PATCHES_LABEL) or 'none'})")
    else:
        offline = " (built offline from /usr/bin/docker-registry)" if image.built_offline else ""
    return image, f"registry image {image.ref}{offline}, {how}"


class Stopwatch:
    """`with Stopwatch() as sw: ...; sw.seconds`"""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
