#!/usr/bin/env python3
"""Downloaded once, used many times: what pulls through the mirror cost on a shared upstream link.

On one machine, in one run, with the upstream (a local registry) reached
through a shared link (tests/support/link.py: one token bucket for every
connection, default 50 MB/s, 20 ms per connection and per request, every
byte counted), for 4 images with a shared base layer (209 MB unique at
--scale 1; random, so bytes on the wire = bytes stored), each case on a
fresh mirror (the product's containers) unless it says otherwise:

  limit            the 4 images' unique bytes / the link's rate: the floor
  direct loop      `docker pull` of each image in turn (by its Docker Hub
                   name) with dockerd's `registry-mirrors` on the bare link,
                   no mirror: as dockerd pulls from Docker Hub itself, the
                   baseline for time
  mirror loop      the same loop through a fresh mirror as dockerd's
                   `registry-mirrors` (every loop's setting made and taken
                   back by the product's own clients.apply/undo; daemon.json
                   comes back byte for byte)
  N at once        N = 1, 4, 8 clients (`skopeo copy` to a directory each)
                   pulling one new image at once through a fresh mirror
  warm             the product's warm (`warm.warm`, as `make
                   docker-mirror-pull` runs it) of the 4 on a fresh mirror
  after the warm   the docker pull loop through that warm mirror
                   (registry-mirrors): hits
  plain registry   the docker pull loop with `registry-mirrors` on the
                   upstream registry itself, no link: the baseline for hits

Each row: seconds and bytes that crossed the link, as ratios, and the
requests that crossed it (GETs of blobs among them). The timed comparisons
(direct vs mirror loop, the warm, hits vs plain registry) run --rounds
times, interleaved, a cold case on a fresh mirror each round; the fastest
round counts (on a shared machine noise only adds time), and so does the
most any round sent over the link. Targets (the issue's): the mirror loop
at most 1.02x the images' bytes and 1.1x the direct loop's time; 8 at once
at most 1.05x one image's bytes; the warm at least 0.9 of the limit's rate;
after the warm at most 1.1x the plain registry's time (hits no slower),
and no blob content on the link.

    python3 bench/fetch_once.py [--scale 1.0] [--rate MBPS] [--latency MS] [--clients 1,4,8]
                                [--rounds 2] [--registry-image REF]

Runs the mirrors on the registry image the product uses by default (the
engine built here, with the product's patches) and prints which one, with
its patches; --registry-image debian gives today's figures (Debian's own
unpatched build, wrapped in an image here), any other REF must be local.
Exits 1 when a target is missed or a step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import common  # noqa: F401  (sys.path)
from common import MB, Stopwatch, docker_client, registry_image, table
import warm_set
from warm import remove_images
from warm_set import timed_warm, write_list

import docker.errors  # noqa: E402

from mirror.services import clients, install  # noqa: E402
from mirror.engine.registry_image import build_offline_image  # noqa: E402
from mirror.errors import MirrorError  # noqa: E402
from mirror.host.client_files import ClientPaths  # noqa: E402
from support.fetch_once import ImageBytes, image_bytes, pull_at_once  # noqa: E402
from support.link import LinkCounts, SharedLink  # noqa: E402
from support.mirrors import Mirror  # noqa: E402
from support.pullthrough import real_daemon_json  # noqa: E402
from support.upstream import UpstreamRegistry, make_layer, push_image  # noqa: E402

# (repository, MB of its own layer at scale 1); all share a BASE_MB layer: 209 MB unique
IMAGES = [("library/postgres", 30), ("minio/minio", 40), ("grafana/grafana", 50), ("library/redis", 60)]
BASE_MB = 29
AT_ONCE = ("vllm/vllm-openai", (30, 20))   # the one new image N clients pull at once
TARGETS = {"bytes": 1.02, "time": 1.1, "at_once": 1.05, "warm": 0.9, "hits": 1.1}


# ------------------------------------------------------------------ images

def push_images(hub: UpstreamRegistry, scale: float, tag: str) -> tuple[list[ImageBytes], ImageBytes]:
    """The 4 images and the one for N at once; layers seeded by `tag`, so this host's
    Docker has never seen them (a layer it has is not downloaded: no bytes to count)."""
    size = lambda mb: max(64_000, int(mb * scale * MB))  # noqa: E731
    repository, sizes = AT_ONCE
    wanted = {"base": (size(BASE_MB), f"{tag}-base"),
              **{name: (size(own), f"{tag}-{name}") for name, own in IMAGES},
              **{(repository, n): (size(mb), f"{tag}-{repository}-{n}") for n, mb in enumerate(sizes)}}
    # gzip level 0 (stored): random data would not shrink anyway, and 260 MB at level 1 takes 15 s here
    layers = {key: make_layer(nbytes, seed, compresslevel=0) for key, (nbytes, seed) in wanted.items()}
    for name, _ in IMAGES:
        push_image(hub.url, name, tag, layers=[layers["base"], layers[name]])
    push_image(hub.url, repository, tag, layers=[layers[(repository, n)] for n in range(len(sizes))])
    return ([image_bytes(hub.url, name, tag) for name, _ in IMAGES], image_bytes(hub.url, repository, tag))


def unique_bytes(images: list[ImageBytes]) -> int:
    return sum({d: s for image in images for d, s in image.blobs.items()}.values())


# ------------------------------------------------------------------ measurements

class Row:
    """One case over its rounds: the fastest round's seconds (on a shared machine noise
    only ever adds time), and the most that crossed the link in any round."""

    def __init__(self, case: str):
        self.case = case
        self.seconds = float("inf")
        self.link_bytes = self.requests = self.blob_gets = self.blob_content = None

    def add(self, seconds: float, counts: LinkCounts | None) -> None:
        self.seconds = min(self.seconds, seconds)
        if counts is None:
            return
        found = (counts.bytes_down, len(counts.requests), sum(map(len, counts.blob_gets().values())),
                 counts.blob_body_bytes)
        old = (self.link_bytes, self.requests, self.blob_gets, self.blob_content)
        self.link_bytes, self.requests, self.blob_gets, self.blob_content = (
            max(new, was) if was is not None else new for new, was in zip(found, old))


@contextlib.contextmanager
def measured(link: SharedLink | None, case: str, rows: dict[str, Row]):
    """Time the block and take the link's counts of it (none when the case does
    not use the link), as one round of `rows[case]`."""
    if link:
        link.reset()
    with Stopwatch() as sw:
        yield
    rows.setdefault(case, Row(case)).add(sw.seconds, link.counts() if link else None)


def pull_loop(client, images: list[ImageBytes], pulled: set[str]) -> None:
    """`docker pull` of each image in turn by its Docker Hub name: dockerd asks its registry-mirrors."""
    for image in images:
        client.images.pull(image.repository, tag=image.tag)
        pulled.add(f"{image.repository}:{image.tag}")


def stand_in(tmp: Path, name: str, port: int):
    """Settings whose mirror port is `port`, where no mirror runs: dockerd is pointed at
    the bare link or a plain registry exactly as at a mirror, so every loop takes
    dockerd's same path (for docker.io, Docker Hub itself is one more such endpoint)."""
    return Mirror(tmp / name, f"http://127.0.0.1:{port}", DOCKER_MIRROR_PORT=port).settings


@contextlib.contextmanager
def docker_uses(settings, tmp: Path):
    """dockerd's registry-mirrors set to the mirror of `settings` by the product (clients.apply),
    then taken back; containerd's files go to `tmp` (this engine's containerd is Docker's own)."""
    paths = ClientPaths(containerd_config=tmp / "containerd/config.toml", certs_dir=tmp / "containerd/certs.d",
                        docker_certs_dir=tmp / "docker-certs.d")
    with real_daemon_json():
        clients.apply(settings, paths)
        try:
            yield
        finally:
            clients.undo(settings)


def fresh_mirror(args, tmp: Path, name: str, remote: str, listing: Path, client, made: list[Mirror]) -> Mirror:
    """A mirror started on empty storage, its image list `listing` (as bench/warm.py's, plus --registry-image)."""
    mirror = Mirror(tmp / name, remote, DOCKER_MIRROR_IMAGES_EXTRA_LIST=str(listing),
                    DOCKER_MIRROR_PULL_CONCURRENCY=warm_set.CONCURRENCY, **args.overrides)
    made.append(mirror)
    install.start_mirrors(mirror.settings, client, log=lambda _: None)
    return mirror


def drop(mirror: Mirror, client, made: list[Mirror]) -> None:
    """Remove a mirror as soon as its case is over (its containers, not its storage)."""
    made.remove(mirror)
    mirror.remove(client)


def run(args, client, tmp: Path, made: list[Mirror], pulled: set[str]) -> dict:
    found: dict = {}
    with UpstreamRegistry(tmp / "hub") as hub, \
            SharedLink(("127.0.0.1", hub.port), args.rate * MB, args.latency / 1000) as link:
        _, found["image_note"] = registry_image(client, Mirror(tmp / "probe", hub.url,
                                                               **args.overrides).settings.registry_image)
        with Stopwatch() as push:
            images, at_once = push_images(hub, args.scale, uuid.uuid4().hex[:12])
        found.update(push=push.seconds, images=images, at_once=at_once)
        empty = tmp / "no-images.txt"
        write_list(empty, [])
        rows: dict[str, Row] = {}

        bare_link = stand_in(tmp, "bare-link", link.port)
        plain_registry = stand_in(tmp, "plain-registry", hub.port)
        for round_ in range(args.rounds):   # interleaved: a slow spell hits both alike
            with docker_uses(bare_link, tmp / f"direct-clients-{round_}"):
                with measured(link, "direct", rows):
                    pull_loop(client, images, pulled)
                remove_images(client, pulled)
            cold = fresh_mirror(args, tmp, f"cold-loop-{round_}", link.url, empty, client, made)
            with docker_uses(cold.settings, tmp / f"cold-clients-{round_}"):
                with measured(link, "mirror", rows):
                    pull_loop(client, images, pulled)
                remove_images(client, pulled)
            drop(cold, client, made)

        for n in args.clients:
            mirror = fresh_mirror(args, tmp, f"at-once-{n}", link.url, empty, client, made)
            dirs = [tmp / f"at-once-{n}-client-{k}" for k in range(n)]
            with measured(link, f"at_once_{n}", rows):
                pull_at_once(f"127.0.0.1:{mirror.port}", at_once, dirs)
            drop(mirror, client, made)
            for directory in dirs:
                shutil.rmtree(directory, ignore_errors=True)

        listing = tmp / "images.txt"
        write_list(listing, [f"{image.repository}:{image.tag}" for image in images])
        warm_mirror = None
        for round_ in range(args.rounds):
            if warm_mirror:
                drop(warm_mirror, client, made)
            warm_mirror = fresh_mirror(args, tmp, f"warm-{round_}", link.url, listing, client, made)
            with measured(link, "warm", rows):
                phases = timed_warm(warm_mirror, client)
            if "warm_phases" not in found or phases.total < found["warm_phases"].total:
                found["warm_phases"] = phases

        for round_ in range(args.rounds):
            with docker_uses(warm_mirror.settings, tmp / f"warm-clients-{round_}"):
                with measured(link, "after_warm", rows):
                    pull_loop(client, images, pulled)
                remove_images(client, pulled)
            with docker_uses(plain_registry, tmp / f"plain-clients-{round_}"):
                with measured(None, "plain", rows):
                    pull_loop(client, images, pulled)
                remove_images(client, pulled)
    found["rows"] = rows
    return found


# ------------------------------------------------------------------ the report

def report(args, found: dict, wall: float) -> int:
    images, at_once, rows = found["images"], found["at_once"], found["rows"]
    unique = unique_bytes(images)
    rate = args.rate * MB
    limit = unique / rate
    one_limit = at_once.blob_bytes / rate
    direct, plain = rows["direct"], rows["plain"]

    def line(label, row: Row, time_of: tuple[str, float], bytes_of: tuple[str, int] | None):
        link_mb = f"{row.link_bytes / MB:.1f}" if row.link_bytes is not None else "-"
        by = f"{row.link_bytes / bytes_of[1]:.2f} × {bytes_of[0]}" \
            if bytes_of and row.link_bytes is not None else ""
        gets = f"{row.requests} ({row.blob_gets})" if row.requests is not None else ""
        return [label, f"{row.seconds:.2f}", f"{row.seconds / time_of[1]:.2f} × {time_of[0]}", link_mb, by, gets]

    four = ("4 images", unique)
    one = ("1 image", at_once.blob_bytes)
    table_rows = [
        ["limit: unique bytes / rate", f"{limit:.2f}", f"{limit / direct.seconds:.2f} × direct",
         f"{unique / MB:.1f}", "1.00 × 4 images", ""],
        line("direct `docker pull` loop: registry-mirrors on the bare link (no mirror)", direct,
             ("direct", direct.seconds), four),
        line("the loop through a fresh mirror (registry-mirrors)", rows["mirror"], ("direct", direct.seconds),
             four),
    ]
    for n in args.clients:
        table_rows.append(line(f"{n} client{'s' if n > 1 else ''} at once on one new image (skopeo), fresh mirror",
                               rows[f"at_once_{n}"], ("image limit", one_limit), one))
    warm_row = rows["warm"]
    table_rows += [
        line("the product's warm of the 4 (warm.warm), fresh mirror", warm_row, ("limit", limit), four),
        line("`docker pull` loop after the warm (registry-mirrors)", rows["after_warm"], ("plain", plain.seconds),
             four),
        line("`docker pull` loop: registry-mirrors on a plain registry (no link)", plain,
             ("plain", plain.seconds), None),
    ]

    print(f"fetch once: {len(images)} images, {unique / MB:.0f} MB unique (--scale {args.scale}); one new image "
          f"of {at_once.blob_bytes / MB:.0f} MB for the clients at once; shared link {args.rate:g} MB/s, "
          f"{args.latency:g} ms per connection and per request; {found['image_note']}; push "
          f"{found['push']:.1f} s, {wall:.0f} s in all; MB = 10^6 bytes")
    print()
    print(table(["case", "seconds", "time ratio", "link MB", "bytes ratio", "upstream requests (blob GETs)"],
                table_rows, "lrrrrr"))
    print()

    mirror_row, after = rows["mirror"], rows["after_warm"]
    checks = [
        (mirror_row.link_bytes / unique <= TARGETS["bytes"],
         f"cold pulls through the mirror: {mirror_row.link_bytes / unique:.2f}x the images' bytes "
         f"(target <= {TARGETS['bytes']}x)"),
        (mirror_row.seconds / direct.seconds <= TARGETS["time"],
         f"cold pulls through the mirror: {mirror_row.seconds / direct.seconds:.2f}x the direct loop's time "
         f"(target <= {TARGETS['time']}x)"),
        (limit / warm_row.seconds >= TARGETS["warm"],
         f"the warm: {limit / warm_row.seconds:.2f} of the limit's rate (target >= {TARGETS['warm']}; fetch "
         f"phase alone {limit / found['warm_phases'].fetch:.2f})"),
        (after.blob_content == 0,
         f"pulls after the warm: {after.blob_content} bytes of blob content on the link (target 0)"),
        (after.seconds / plain.seconds <= TARGETS["hits"],
         f"pulls after the warm (hits): {after.seconds / plain.seconds:.2f}x a plain registry's time "
         f"(target <= {TARGETS['hits']}x)"),
    ]
    if 8 in args.clients:
        eight = rows["at_once_8"]
        checks.insert(2, (eight.link_bytes / at_once.blob_bytes <= TARGETS["at_once"],
                          f"8 clients at once: {eight.link_bytes / at_once.blob_bytes:.2f}x one image's bytes "
                          f"(target <= {TARGETS['at_once']}x)"))
    for good, text in checks:
        print(f"- {'OK' if good else 'MISSED'}: {text}")
    return 0 if all(good for good, _ in checks) else 1


def mirror_image(client, wanted: str | None) -> dict:
    """The .config values that run the mirrors on --registry-image: none for the product's
    default; `debian` for Debian's own build wrapped here (today's engine); else an image
    that must be local already (the bench pulls nothing from outside)."""
    if not wanted:
        return {}
    if wanted == "debian":
        wanted = build_offline_image(client).ref
    else:
        try:
            client.images.get(wanted)
        except docker.errors.ImageNotFound:
            raise MirrorError(f"--registry-image {wanted}: no such image on this host (the bench pulls "
                              f"nothing; `--registry-image debian` runs Debian's own build)") from None
    return dict(DOCKER_MIRROR_REGISTRY_BUILT=False, DOCKER_MIRROR_REGISTRY_IMAGE=wanted)


def clients_list(text: str) -> list[int]:
    try:
        counts = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--clients {text!r}: not a comma-separated list of numbers") from None
    if not counts or any(not 1 <= n <= 32 for n in counts):
        raise argparse.ArgumentTypeError(f"--clients {text!r}: each count must be between 1 and 32")
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="image size factor (default 1.0: 209 MB unique; 0.25 for a quick run)")
    parser.add_argument("--rate", type=float, default=50.0, help="the link's rate, MB/s (default 50)")
    parser.add_argument("--latency", type=float, default=20.0,
                        help="the link's round trip, ms, per connection and per request (default 20)")
    parser.add_argument("--clients", type=clients_list, default=[1, 4, 8],
                        help="how many clients pull one new image at once, each in turn (default 1,4,8)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of each timed comparison, interleaved; the fastest counts (default 2)")
    parser.add_argument("--registry-image", metavar="REF",
                        help="run the mirrors on this local image instead of the product's default (the "
                             "engine built here); `debian`: Debian's unpatched build, today's figures")
    args = parser.parse_args(argv)
    if not 0.01 <= args.scale <= 4:
        parser.error(f"--scale {args.scale:g}: must be between 0.01 and 4")
    if not 1 <= args.rate <= 10_000:
        parser.error(f"--rate {args.rate:g}: must be between 1 and 10000 MB/s")
    if not 1 <= args.rounds <= 10:
        parser.error(f"--rounds {args.rounds}: must be between 1 and 10")
    if not 0 <= args.latency <= 1000:
        parser.error(f"--latency {args.latency:g}: must be between 0 and 1000 ms")

    client = docker_client()
    try:
        args.overrides = mirror_image(client, args.registry_image)
    except (MirrorError, docker.errors.DockerException) as err:
        parser.error(str(err))
    made: list[Mirror] = []
    pulled: set[str] = set()
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fetch-once-") as tmp:
        try:
            found = run(args, client, Path(tmp), made, pulled)
        except (RuntimeError, MirrorError, docker.errors.DockerException) as err:
            print(f"error: a step failed: {err.__class__.__name__}: {err}", file=sys.stderr)
            return 1
        finally:
            remove_images(client, pulled)
            for mirror in made:
                with contextlib.suppress(Exception):
                    mirror.remove(client)
    return report(args, found, time.perf_counter() - wall)


if __name__ == "__main__":
    sys.exit(main())
