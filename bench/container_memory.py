#!/usr/bin/env python3
"""Peak memory and threads of each container the product runs, against its limit (issue 20).

Every container runs on the real engine, made by the product's own code, under
the work that loads it; its memory is read from its cgroup (cgroup v1:
memory.max_usage_in_bytes, the kernel's own peak; v2: memory.peak), and
sampled every 20 ms besides (usage, resident memory and threads: memory.stat's
rss / anon, pids.current):

  registry, filesystem   one mirror: a cold warm of N images (three layers of
                         --layer-mb each, 8 downloads at a time), then
                         `docker pull`s of those and of 2 images more (not
                         warmed: pulled through cold), all at once, with
                         --clients HTTP clients pulling every warmed image
                         alongside
  registry replica, s3   the same through HAProxy, 3 replicas on SeaweedFS
                         with Redis (tests/commands/test_replicas.py's setup)
  HAProxy, Redis         during the replicas' warm and pulls
  garbage-collect        the one-shot container of a collection that drops
                         the 2 unpinned images (lifecycle.collect with a
                         size limit of half the cache), on each storage;
                         caught by its `create` event, read until it goes

The baseline is each container's own memory right after start, before any
request (idle); the limit is what the bench's .config gives the container
(Kconfig's defaults: settings.resources), never a number written here. The
cgroup's figure counts the page cache the container's writes made, which the
kernel reclaims before it would kill the container at its limit; resident
memory (rss / anon) is what cannot be reclaimed.

    python3 bench/container_memory.py [--quick] [--images 5] [--layer-mb 8] [--clients 4]

Exits 1 when a container's resident peak reaches half its limit, the kernel killed a
process of one at its limit (memory.oom_control / memory.events: oom_kill), or a step fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import docker_client, registry_image, table

from mirror.model.replicas import replica_names  # noqa: E402
from mirror.services import install, lifecycle, warm  # noqa: E402
from support.configs import image_list  # noqa: E402
from support.mirrors import Mirror, docker_pull  # noqa: E402
from support.replicas import free_port_block, haproxy_servers, pull, wait_for  # noqa: E402
from support.seaweed import SeaweedS3  # noqa: E402
from support.upstream import UpstreamRegistry, make_layer, push_image  # noqa: E402

MIB = 1 << 20
CGROUP = Path("/sys/fs/cgroup")
KEYS = ("cmembench", "cmem-bench-secret-key")
BUCKET = "cmem-bench"
INTERVAL = 0.02


# --- cgroups -----------------------------------------------------------------------------------

def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stat(path: Path, *keys: str) -> int | None:
    try:
        found = dict(line.split() for line in path.read_text().splitlines())
    except (OSError, ValueError):
        return None
    for key in keys:
        if key in found:
            return int(found[key])
    return None


@dataclasses.dataclass
class Cgroup:
    """Where one container's memory and pids cgroups are, on v1 or v2, cgroupfs or systemd."""
    memory: Path
    pids: Path
    v2: bool

    @classmethod
    def of(cls, container_id: str, pid: int = 0) -> "Cgroup | None":
        """By the engine's usual places (cgroupfs or systemd driver), else (`pid`, the
        container's first process) by what /proc says of that process."""
        v2 = (CGROUP / "cgroup.controllers").exists()
        tails = [f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"]
        if pid:
            try:
                lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
            except OSError:
                lines = []
            for line in lines:   # "0::/path" (v2), "N:memory:/path" (v1)
                _, controllers, path = line.split(":", 2)
                if (v2 and controllers == "") or (not v2 and "memory" in controllers.split(",")):
                    tails.append(path.lstrip("/"))
        for tail in tails:
            memory = CGROUP / tail if v2 else CGROUP / "memory" / tail
            if memory.is_dir():
                return cls(memory, memory if v2 else CGROUP / "pids" / tail, v2)
        return None

    def usage(self) -> int | None:
        return _read_int(self.memory / ("memory.current" if self.v2 else "memory.usage_in_bytes"))

    def peak(self) -> int | None:
        """The kernel's own peak (v1 always; v2 from Linux 5.19)."""
        return _read_int(self.memory / ("memory.peak" if self.v2 else "memory.max_usage_in_bytes"))

    def resident(self) -> int | None:
        return _stat(self.memory / "memory.stat", *(("anon",) if self.v2 else ("total_rss", "rss")))

    def threads(self) -> int | None:
        return _read_int(self.pids / "pids.current")

    def oom_kills(self) -> int | None:
        """Processes the kernel killed at the limit (v1 from Linux 4.13)."""
        return _stat(self.memory / ("memory.events" if self.v2 else "memory.oom_control"), "oom_kill")


@dataclasses.dataclass
class Reading:
    name: str
    idle: int | None = None          # usage right after start
    idle_resident: int | None = None
    peak: int = 0                    # the kernel's peak, or the sampled one when higher/absent
    resident: int = 0
    threads: int = 0
    oom_kills: int = 0
    samples: int = 0

    def take(self, group: Cgroup) -> bool:
        usage = group.usage()
        if usage is None:
            return False   # gone
        self.samples += 1
        self.peak = max(self.peak, usage, group.peak() or 0)
        self.resident = max(self.resident, group.resident() or 0)
        self.threads = max(self.threads, group.threads() or 0)
        self.oom_kills = max(self.oom_kills, group.oom_kills() or 0)
        return True


class Sampler:
    """Every INTERVAL, each watched container's cgroup; `watch(container)` records its idle
    memory first (the baseline)."""

    def __init__(self):
        self.readings: dict[str, Reading] = {}
        self._groups: dict[str, Cgroup] = {}
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def watch(self, container) -> Reading:
        group = Cgroup.of(container.id, container.attrs["State"].get("Pid") or 0)
        if group is None:
            raise SystemExit(f"error: no memory cgroup found for container {container.name} under {CGROUP}")
        reading = Reading(container.name, idle=group.usage(), idle_resident=group.resident())
        reading.take(group)
        with self._lock:
            self.readings[container.name], self._groups[container.name] = reading, group
        return reading

    def _run(self):
        while not self._stop.wait(INTERVAL):
            with self._lock:
                for name, group in list(self._groups.items()):
                    if not self.readings[name].take(group):
                        del self._groups[name]


class OneShots:
    """The one-shot containers (garbage-collect) whose names start with `prefix`: seen at their
    `create` event, their cgroup read every millisecond from its appearance to its removal
    (they live for tens of milliseconds, removed on exit)."""

    def __init__(self, client, prefix: str):
        self.client, self.prefix = client, prefix
        self.readings: list[Reading] = []
        self._events = client.events(decode=True, filters={"type": "container", "event": "create"})
        self._threads: list[threading.Thread] = []
        self._listener = threading.Thread(target=self._listen, daemon=True)

    def __enter__(self):
        self._listener.start()
        return self

    def __exit__(self, *exc):
        for thread in self._threads:
            thread.join(timeout=60)
        self._events.close()

    def _listen(self):
        try:
            for event in self._events:
                name = event.get("Actor", {}).get("Attributes", {}).get("name", "")
                if name.startswith(self.prefix) and name.endswith("-once"):
                    thread = threading.Thread(target=self._follow, args=(event["id"], name), daemon=True)
                    self._threads.append(thread)
                    thread.start()
        except Exception:   # the stream closed at exit
            pass

    def _follow(self, container_id: str, name: str):
        reading, deadline = Reading(name), time.monotonic() + 30
        group = None
        while group is None and time.monotonic() < deadline:
            group = Cgroup.of(container_id)
            time.sleep(0.0005)
        if group is not None:
            while reading.take(group):
                time.sleep(0.001)
        self.readings.append(reading)


# --- the work ----------------------------------------------------------------------------------

COLD = 2   # images pulled through cold by `docker pull` alone: unpinned, what the collection drops


def images_on(hub: UpstreamRegistry, count: int, layer_mb: int) -> list[str]:
    """`count` images to warm, then COLD more."""
    names = [f"library/cmem{n}" for n in range(count + COLD)]
    for n, name in enumerate(names):
        push_image(hub.url, name, "1", layers=[make_layer(layer_mb * MIB, f"cmem-{n}-{k}") for k in range(3)])
    return names


def load(client, mirror: Mirror, names: list[str], clients: int) -> dict:
    """The cold warm, then every image by `docker pull` at once (the last COLD of them not
    warmed: pulled through cold) with `clients` HTTP clients pulling every warmed image
    alongside; seconds of each."""
    started, lines = time.monotonic(), []
    failed = warm.warm(mirror.settings, log=lines.append, client=client, gc=False)
    if failed:
        raise RuntimeError("warm failed: " + "\n".join(lines[-30:]))
    warmed = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(names) + clients) as pool:
        jobs = [pool.submit(docker_pull, client, mirror, f"{name}:1") for name in names]
        jobs += [pool.submit(lambda: [pull(mirror.url(), name, "1") for name in names[:-COLD]])
                 for _ in range(clients)]
        for job in jobs:
            job.result()
    return {"warm": warmed - started, "pulls": time.monotonic() - warmed}


def collect_half(client, mirror: Mirror, prefix: str) -> list[Reading]:
    """A collection with a size limit of half the cache: it drops the COLD unpinned images
    (the warmed ones are pinned), and garbage-collect runs once."""
    settings = mirror.settings
    survey = lifecycle.collect(settings, client, dry_run=True, log=lambda _: None)
    limited = dataclasses.replace(settings, lifecycle=dataclasses.replace(
        settings.lifecycle, max_bytes=max(1, survey.plan.bytes_before // 2)))
    with OneShots(client, prefix) as shots:
        done = lifecycle.collect(limited, client, log=lambda _: None)
        time.sleep(0.2)
    if not done.plan.evictions:
        raise RuntimeError("the collection dropped nothing: no garbage-collect ran")
    if not shots.readings or not shots.readings[0].samples:
        raise RuntimeError("the garbage-collect container was not caught (cgroup never seen)")
    return shots.readings


def filesystem_case(client, tmp: Path, hub, names, clients: int) -> dict:
    mirror = Mirror(tmp / "fs", hub.url,
                    DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp, *(f"{n}:1" for n in names[:-COLD])))
    try:
        install.start_mirrors(mirror.settings, client, log=lambda _: None)
        with Sampler() as sampler:
            registry = sampler.watch(mirror.container(client))
            seconds = load(client, mirror, names, clients)
        gc = collect_half(client, mirror, mirror.prefix)
        return {"settings": mirror.settings, "registry": [registry], "gc": gc, "seconds": seconds}
    finally:
        mirror.remove(client)


def replicas_case(client, tmp: Path, hub, names, clients: int, store: SeaweedS3) -> dict:
    mirror = Mirror(tmp / "s3", hub.url, DOCKER_MIRROR_STORAGE_FILESYSTEM=False,
                    DOCKER_MIRROR_STORAGE_S3=True, DOCKER_MIRROR_S3_ENDPOINT=store.endpoint,
                    DOCKER_MIRROR_S3_BUCKET=BUCKET, DOCKER_MIRROR_S3_ACCESS_KEY_ID=KEYS[0],
                    DOCKER_MIRROR_S3_SECRET_KEY=KEYS[1], DOCKER_MIRROR_S3_ROOT_DIRECTORY="/cmem",
                    DOCKER_MIRROR_REPLICAS=3, DOCKER_MIRROR_REPLICA_PORT_BASE=free_port_block(),
                    DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp, *(f"{n}:1" for n in names[:-COLD])))
    try:
        mirror.setup()   # `make docker-mirror`: replicas, HAProxy, Redis
        replicas = replica_names(mirror.prefix, "dockerhub", 3)
        with Sampler() as sampler:
            found = {name: sampler.watch(client.containers.get(name))
                     for name in [*replicas, f"{mirror.prefix}-lb", f"{mirror.prefix}-redis"]}
            wait_for(lambda: all(s["status"] == "UP" for s in haproxy_servers(
                mirror.settings.replicas.stats_port).values()), 30, "HAProxy to see the replicas")
            seconds = load(client, mirror, names, clients)
        gc = collect_half(client, mirror, mirror.prefix)
        return {"settings": mirror.settings, "registry": [found[n] for n in replicas],
                "haproxy": [found[f"{mirror.prefix}-lb"]], "redis": [found[f"{mirror.prefix}-redis"]],
                "gc": gc, "seconds": seconds}
    except Exception:
        print(f"SeaweedFS's log:\n{store.log_tail()}", file=sys.stderr)
        raise
    finally:
        mirror.remove(client)


# --- the table ---------------------------------------------------------------------------------

def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.1f}"


def row(kind: str, readings: list[Reading], limit_mb: int, pids: int) -> tuple[list, float]:
    """The container of `readings` with the highest peak (replicas: the busiest of three)."""
    top = max(readings, key=lambda r: r.peak)
    idle = [r.idle for r in readings if r.idle]
    idle_mean = sum(idle) / len(idle) if idle else None
    limit = limit_mb * MIB
    if any(r.oom_kills for r in readings):
        print(f"error: {kind}: killed at its memory limit ({sum(r.oom_kills for r in readings)} OOM kills)")
        return [], 1.0
    return [kind, mib(int(idle_mean) if idle_mean else None), mib(top.peak), mib(top.resident),
            f"{top.peak / idle_mean:.1f}x" if idle_mean else "-", str(top.threads),
            f"{limit_mb} MiB / {pids}", f"{top.peak / limit:.3f}", f"{top.resident / limit:.3f}"], \
        top.resident / limit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 images of 3 x 4 MiB, 2 clients")
    parser.add_argument("--images", type=int, default=5, help="images (default 5)")
    parser.add_argument("--layer-mb", type=int, default=8, help="MiB per layer, 3 layers an image (default 8)")
    parser.add_argument("--clients", type=int, default=4,
                        help="HTTP clients pulling every image beside the docker pulls (default 4)")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.layer_mb, args.clients = 3, 4, 2
    client = docker_client()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cmem-bench-", dir="/var/tmp") as tmp:
        tmp = Path(tmp)
        _, note = registry_image(client, Mirror(tmp / "probe", "http://127.0.0.1:9").settings.registry_image)
        with UpstreamRegistry(tmp / "hub") as hub, SeaweedS3(tmp / "seaweed", *KEYS) as store:
            names = images_on(hub, args.images, args.layer_mb)
            store.make_bucket(BUCKET)
            fs = filesystem_case(client, tmp, hub, names, args.clients)
            s3 = replicas_case(client, tmp, hub, names, args.clients, store)
    limits = fs["settings"].resources
    s3_limits = s3["settings"].resources
    cases = [
        ("registry, filesystem storage", fs["registry"], limits.registry_memory_mb, limits.pids),
        ("registry replica, s3 (SeaweedFS), busiest of 3", s3["registry"], s3_limits.registry_memory_mb,
         s3_limits.pids),
        ("HAProxy (3 replicas)", s3["haproxy"], s3_limits.haproxy_memory_mb, s3_limits.pids),
        ("Redis (3 replicas)", s3["redis"], s3_limits.redis_memory_mb, s3_limits.pids),
        ("`garbage-collect` one-shot, filesystem", fs["gc"], limits.collect_memory_mb, limits.pids),
        ("`garbage-collect` one-shot, s3", s3["gc"], s3_limits.collect_memory_mb, s3_limits.pids),
    ]
    rows, worst = [], 0.0
    for case in cases:
        line, share = row(*case)
        if line:
            rows.append(line)
        worst = max(worst, share)
    print(f"container memory; {note}; cgroup {'v2' if (CGROUP / 'cgroup.controllers').exists() else 'v1'}; "
          f"{args.images} images of 3 x {args.layer_mb} MiB warmed, then {args.images + COLD} docker "
          f"pulls at once ({COLD} cold) + {args.clients} HTTP clients; MiB = 2^20 bytes")
    print()
    print(table(["container", "idle MiB (baseline)", "peak MiB (cgroup)", "peak resident MiB",
                 "peak × idle", "peak threads", "limit (Kconfig default) / pids", "peak × limit",
                 "resident × limit"], rows, "lrrrrrrrr"))
    print()
    for label, case in (("filesystem", fs), ("s3, 3 replicas", s3)):
        print(f"{label}: warm {case['seconds']['warm']:.1f} s, pulls {case['seconds']['pulls']:.1f} s; "
              f"garbage-collect sampled {sum(r.samples for r in case['gc'])} times")
    print(f"run: {time.monotonic() - started:.0f} s")
    if worst >= 0.5:
        print(f"a resident peak reached {worst:.2f} of its limit (target under 0.5)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
