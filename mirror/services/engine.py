"""`make engine` (python3 -m mirror engine): build the registry engine once per machine, and its image.

The build itself is mirror.engine.build; the image, mirror.engine.registry_image.
`make deps` runs this with apt allowed, after the Docker engine is up, so
that `make docker-mirror` finds the image and needs nothing more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..engine import build
from ..engine.registry_image import ensure_built_image
from ..errors import DockerError


@dataclass
class Report:
    build: build.Build
    reused: bool
    seconds: float
    image: str = ""                 # the image's ref, or why there is none
    tests: list = field(default_factory=list)   # (status, package, time) from go test

    @property
    def lines(self) -> list[str]:
        info = self.build.info
        taken = info.get("seconds", {})
        how = ("reused from the cache" if self.reused else
               f"built in {self.seconds:.1f} s: " + ", ".join(f"{k.replace('_', ' ')} {v} s" for k, v in taken.items()))
        patches = [p["name"] for p in info.get("product_patches", [])]
        lines = [
            f"registry engine {info.get('version')}: {self.build.binary} ({how})",
            f"  from {info.get('source_package')} {info.get('debian_version')}, Debian's patches but "
            f"{', '.join(info.get('dropped', []))}; the product's: {', '.join(patches) or 'none'}",
        ]
        if self.image:
            lines.append(f"  image: {self.image}")
        for status, package, seconds in self.tests:
            lines.append(f"  go test: {status:8} {package} {seconds}".rstrip())
        return lines


def run(*, rebuild: bool = False, apt: bool = False, test: bool = False, image: bool = True,
        connect=None, log=print) -> Report:
    """Build (or reuse) the engine; with `image`, make its image too (when the Docker engine answers)."""
    clock = time.monotonic()
    before = build.cached(build.current_key())
    made = build.ensure(rebuild=rebuild, apt=apt, log=log)
    report = Report(made, reused=before is not None and not rebuild, seconds=time.monotonic() - clock)
    if image and connect is not None:
        try:
            client = connect()
        except DockerError as err:
            report.image = f"none yet ({err}): make docker-mirror makes it"
        else:
            report.image = ensure_built_image(client, log=log).ref
    if test:
        report.tests = build.run_tests(made, log=log)
    return report
