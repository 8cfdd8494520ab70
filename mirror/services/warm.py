"""Warming: `make docker-mirror-pull` and the refresh pull the images to keep warm.

The run itself is the engine's (services.warm_engine); around it, this
module lists the images, shows progress, writes images/manifest.txt and the
summary, pins what was warmed (services.lifecycle) and collects what the
cache's lifecycle policy drops.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

from tqdm import tqdm

from .. import render
from ..config import image_lists
from ..model.settings import Settings
from ..errors import DockerError, MirrorError
from ..engine import build, containers
from ..engine.client import find_container
from ..host import diskspace
from ..host.files import atomic_write
from ..host.layout import Layout
from ..model.manifests import chosen_platforms
from ..render import human_size
from . import lifecycle
from .warm_engine import Engine, Result

# The product patch (patches/distribution/) that makes the engine fetch each blob once.
FETCH_ONCE_PATCH = "0001-proxy-fetch-each-blob-once.patch"


def write_manifest(layout: Layout, results: list[Result]) -> None:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entries = [dict(reference=r.reference, digest=r.digest, upstream=r.upstream,
                    size=r.fetched_bytes + r.cached_bytes, time=now) for r in results if r.ok]
    atomic_write(layout.manifest, render.render("manifest.txt.j2", entries=entries))


def summary(results: list[Result], errors: list[str]) -> str:
    rows = [dict(image=r.reference, digest=r.digest[:19] or "-", fetched=human_size(r.fetched_bytes),
                 cached=human_size(r.cached_bytes), seconds=f"{r.seconds:.1f}",
                 result="ok" if r.ok else "FAILED") for r in results]
    return render.render("warm-summary.txt.j2", rows=rows, errors=errors,
                         failed=[r for r in results if not r.ok])


def runs_distribution_2(settings: Settings, client) -> bool:
    """True when every mirror container says it runs distribution 2.x."""
    return client is not None and all(
        containers.mirror_container(client, settings, u).major == "2" for u in settings.upstreams)


def fetches_once(settings: Settings, client) -> bool:
    """True when every mirror container runs an engine with the fetch-once patch.

    Told by the image's label (the engine built here lists its product patches:
    build.PATCHES_LABEL; a container carries its image's labels). Any other
    image (a user's registry:2 or registry:3, Debian's build wrapped) may fetch
    a blob twice and stores in the background: the warm then takes the slow,
    careful way. No engine answering: the careful way too."""
    if client is None:
        return False
    for upstream in settings.upstreams:
        try:
            container = find_container(client, containers.container_names(settings, upstream)[0])
        except DockerError:
            return False
        patches = ((container.labels or {}).get(build.PATCHES_LABEL, "") if container else "").split(",")
        if FETCH_ONCE_PATCH not in patches:
            return False
    return True


def warm(settings: Settings, log=print, client=None, extra: list[tuple[str, str]] = (),
         extra_errors: list[str] = (), gc: bool = True) -> list[str]:
    """Warm every image to keep, and `extra` (reference, source) pairs; then pin them
    (the current digest and the previous ones kept) and, with `gc`, collect what the
    lifecycle policy drops.

    Returns what failed: images, and bad list lines (with `extra_errors`,
    those of lists read by the caller).
    """
    wanted, errors = image_lists.wanted_images(settings, extra)
    errors = [*extra_errors, *errors]
    for error in errors:
        log(f"skipped: {error}")
    platforms = chosen_platforms(settings.pull_all_platforms)
    once = fetches_once(settings, client)
    engine = Engine(settings, log=log, platforms=platforms, concurrency=settings.pull_concurrency,
                    fetch_once=once, hang_up=not once and runs_distribution_2(settings, client))
    log(f"warming {len(wanted)} image(s), {settings.pull_concurrency} downloads at a time"
        + ("" if once or not settings.pull_through else " (the registry image may fetch twice: "
           "each blob is waited for in storage)"))
    # A bar for a person at a terminal; logs and the journal get the lines alone.
    with tqdm(total=len(wanted), unit="image", file=sys.stderr, disable=not sys.stderr.isatty(),
              dynamic_ncols=True) as bar:
        fetched = [0]

        def advance(result: Result) -> None:
            fetched[0] += result.fetched_bytes
            bar.set_postfix_str(f"{human_size(fetched[0])} fetched", refresh=False)
            bar.update(1)
        results = engine.run(wanted, progress=advance)
    written = _record(settings, engine.layout, wanted, results, log)
    short = sum(r.disk_short for r in results)
    if short:
        log(f"disk full: {len(full_ones(results))} image(s) did not fit in the cache "
            f"({diskspace.space(engine.layout.root) or engine.layout.root}); "
            + ("the policy makes room" if gc else "nothing is collected in this run"))
    collected, gc_failed = None, []
    if gc:
        try:
            collected = lifecycle.collect(settings, client, log=log, must_free=short)
        except MirrorError as err:
            log(f"garbage collection failed: {err}")
            gc_failed = ["(garbage collection)"]
    if short and collected is not None:
        # No second go in this run: the images that did not fit stay failed (the run says
        # why), and the next refresh finds the room made.
        log(f"disk full: the policy made {human_size(collected.plan.freed)} of room for the next "
            f"refresh (needed {human_size(short)}); "
            f"{diskspace.space(engine.layout.root) or engine.layout.root} now")
    if not written:
        _record(settings, engine.layout, wanted, results, log)
    for line in summary(results, errors).splitlines():
        log(line)
    return [r.reference + (diskspace.NOTE if r.disk_short else "") for r in results if not r.ok] \
        + errors + gc_failed


def full_ones(results: list[Result]) -> list[Result]:
    return [r for r in results if r.disk_short]


def _record(settings: Settings, layout: Layout, wanted, results: list[Result], log) -> bool:
    """images/manifest.txt and the pins; False (said in the log) when the disk is too full."""
    try:
        write_manifest(layout, results)
        lifecycle.record_pins(settings, wanted, results)
    except OSError as err:
        if not diskspace.is_disk_full(err):
            raise
        log(f"disk full: cannot record what was warmed yet ({err.filename}: {err.strerror})")
        return False
    return True
