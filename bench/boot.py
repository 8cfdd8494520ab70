#!/usr/bin/env python3
"""Boot to a mirror answering, and timer due to refresh finished, on a host with systemd as PID 1.

Uses the test harness (tests/support/systemd_host.py): a Debian root file
system with systemd and the Docker engine, booted as a container on the
host's network, the product copied in, its Quick start run once, an upstream
registry with three synthetic images on the host's loopback. Then:

  boot     the container is halted (`docker stop`: systemd shuts down, the
           nested engine stops its containers), then started (`docker
           start`); from that call, the time until
             - the nested Docker engine answers `/_ping` (the baseline: the
               mirror can answer no sooner than its engine), and
             - the mirror answers `GET /v2/` on 127.0.0.1 (polled from the
               host every 20 ms),
           with the upstream up (the engine restarts the registry by its
           restart policy; after a boot with the upstream down that is the
           offline one, until the keeper finds the upstream back) and down
           (distribution 2.8 panics without its upstream; the boot path
           recreates it read-only). The mode label of the container that
           answered first is recorded; with the upstream down it must be
           offline.
  timer    OnCalendar set to one exact second ~30 s ahead (RandomizedDelaySec
           0): from that second to the refresh service's exit, against a
           manual `systemctl start docker-mirror-refresh.service` of the same
           refresh (all images cached, the upstream up). systemd fires a
           calendar timer anywhere in [due, due + AccuracySec]; with no random
           delay the product's timer sets AccuracySec=1s.

    python3 bench/boot.py [--runs N] [--timer-runs K]

The engine is polled with `docker exec` (about 50-100 ms per poll), so its
figures carry that much granularity; the mirror's do not.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import common  # noqa: F401  (sys.path)
from common import median, p90, table

from support.systemd_host import (  # noqa: E402
    REFRESH_SERVICE, REFRESH_TIMER, MirrorHost, build_image, calendar_at, image_exists, image_tag,
    wait_for,
)



def boot_once(mirror: MirrorHost, timeout: float = 90) -> dict:
    """Halt, then start; seconds from `docker start` to the engine and to the mirror answering."""
    host = mirror.host
    host.stop()
    found: dict[str, float] = {}

    def engine():
        while "engine" not in found and time.perf_counter() - t0 < timeout:
            done = host.exec(["curl", "-s", "-m", "1", "--unix-socket", "/run/docker.sock",
                              "http://localhost/_ping"], check=False, timeout=10)
            if done.stdout.strip() == "OK":
                found["engine"] = time.perf_counter() - t0
            else:
                time.sleep(0.02)

    def mirror_answers():
        while "mirror" not in found and time.perf_counter() - t0 < timeout:
            if mirror.answers():
                found["mirror"] = time.perf_counter() - t0
                found["mode"] = mirror.mode()  # which container answered first
            else:
                time.sleep(0.02)

    t0 = time.perf_counter()
    host.started_at = time.time()
    subprocess.run(["docker", "start", host.name], check=True, capture_output=True)
    threads = [threading.Thread(target=engine), threading.Thread(target=mirror_answers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    host.wait_booted()
    missing = {"engine", "mirror"} - set(found)
    if missing:
        raise RuntimeError(f"no answer from {', '.join(sorted(missing))} within {timeout} s of boot\n"
                           f"{host.diagnose()}")
    return found


def set_schedule(mirror: MirrorHost, calendar: str) -> None:
    done = mirror.set_config(DOCKER_MIRROR_REFRESH_ON_CALENDAR=calendar)
    if done.returncode != 0:
        raise RuntimeError(f"make olddefconfig: {done.stdout}{done.stderr}")
    done = mirror.host.make("docker-mirror")
    if done.returncode != 0:
        raise RuntimeError(f"make docker-mirror: {done.stdout}{done.stderr}")
    if not mirror.wait_refresh_idle(120):
        raise RuntimeError(f"refresh did not end\n{mirror.host.diagnose()}")


def timer_once(mirror: MirrorHost, lead: float = 30) -> dict[str, float]:
    host = mirror.host
    due = int(host.now() + lead)
    set_schedule(mirror, calendar_at(due))
    if host.now() > due - 3:
        raise RuntimeError("setting the schedule took longer than the lead time")
    before = (mirror.last_refresh() or {}).get("log")

    def refreshed():
        return (mirror.last_refresh() or {}).get("log") != before and mirror.refresh_idle()

    if not wait_for(refreshed, timeout=due - host.now() + 90, interval=0.5):
        raise RuntimeError(f"the timer due at {calendar_at(due)} did not run the refresh\n"
                           f"{host.diagnose()}")
    times = mirror.unit_times(REFRESH_SERVICE)
    if (mirror.last_refresh() or {}).get("result") != "ok" or not times["start"] or times["start"] < due - 0.5:
        raise RuntimeError(f"unexpected run: {mirror.last_refresh()} {times} (due {due})")
    return {"start": times["start"] - due, "finished": times["exit"] - due,
            "run": times["exit"] - times["start"]}


def manual_once(mirror: MirrorHost) -> dict[str, float]:
    started = time.perf_counter()
    done = mirror.host.systemctl("start", REFRESH_SERVICE, timeout=300)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"systemctl start {REFRESH_SERVICE}: {done.stdout}{done.stderr}")
    times = mirror.unit_times(REFRESH_SERVICE)
    return {"wall": wall, "run": times["exit"] - times["start"]}


def ensure_no_random_delay(mirror: MirrorHost) -> str:
    done = mirror.set_config(DOCKER_MIRROR_REFRESH_RANDOM_DELAY=0)
    if done.returncode != 0:
        raise RuntimeError(f"make olddefconfig: {done.stdout}{done.stderr}")
    mirror.host.make("docker-mirror")
    mirror.wait_refresh_idle(120)
    delay = mirror.host.systemctl("show", REFRESH_TIMER, "-p", "RandomizedDelayUSec", "--value").stdout.strip()
    if delay != "0":
        raise RuntimeError(f"CONFIG_DOCKER_MIRROR_REFRESH_RANDOM_DELAY=0, yet RandomizedDelayUSec={delay}")
    return "CONFIG_DOCKER_MIRROR_REFRESH_RANDOM_DELAY=0 (the timer: AccuracySec=1s)"


def fmt(samples: list[float]) -> tuple[str, str]:
    return f"{median(samples):.2f}", f"{p90(samples):.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="boots per case (default 5)")
    parser.add_argument("--timer-runs", type=int, default=2,
                        help="timer runs, and manual runs (default 2)")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 50 or not 1 <= args.timer_runs <= 20:
        parser.error("--runs must be 1..50 and --timer-runs 1..20")

    wall = time.perf_counter()
    had_image = image_exists(image_tag())
    started = time.perf_counter()
    image = build_image(log=lambda line: print(line, file=sys.stderr))
    image_note = (f"root-fs image {image} already built" if had_image else
                  f"root-fs image {image} built in {time.perf_counter() - started:.0f} s (not timed below)")

    with tempfile.TemporaryDirectory(prefix="docker-mirror-bench-boot-") as tmp:
        mirror = MirrorHost.create(Path(tmp), name=f"dmtest-systemd-bench-{int(time.time())}", image=image)
        try:
            started = time.perf_counter()
            done = mirror.quickstart()
            quickstart = time.perf_counter() - started
            if done.returncode != 0:
                raise RuntimeError(f"scripts/quickstart.sh failed:\n{done.stdout}{done.stderr}")
            if not mirror.wait_refresh_idle(120):
                raise RuntimeError(f"first refresh did not end\n{mirror.host.diagnose()}")

            boots: dict[str, list[dict]] = {"up": [], "down": []}
            for round_ in range(args.runs + 1):  # round 0 warms the page cache and is dropped
                for case in ("up", "down"):
                    (mirror.upstream.start if case == "up" else mirror.upstream.stop)()
                    measured = boot_once(mirror)
                    if case == "down" and measured["mode"] != "offline":
                        raise RuntimeError(f"upstream down, yet the first answer came from a "
                                           f"{measured['mode']} mirror\n{mirror.host.diagnose()}")
                    if round_:
                        boots[case].append(measured)
            mirror.upstream.start()
            mirror.host.make("docker-mirror")  # back to pull-through
            mirror.wait_refresh_idle(120)

            delay_note = ensure_no_random_delay(mirror)
            manual = [manual_once(mirror) for _ in range(args.timer_runs)]
            timers = [timer_once(mirror) for _ in range(args.timer_runs)]
        finally:
            mirror.close()
    wall = time.perf_counter() - wall

    print(f"Boot and timer on a host with systemd as PID 1 (a container: Debian {image}, nested "
          f"engine on vfs, host network); {image_note}; Quick start inside took {quickstart:.1f} s; "
          f"{args.runs} boots per case after 1 dropped warm-up round, {args.timer_runs} timer runs; "
          f"{delay_note}; {wall:.0f} s in all")
    print()
    engine_all = [b["engine"] for case in boots.values() for b in case]
    rows = []
    for case, label in (("up", "upstream up"), ("down", "upstream down: boots offline")):
        eng = [b["engine"] for b in boots[case]]
        mir = [b["mirror"] for b in boots[case]]
        rows.append([f"boot → engine answers ({label})", *fmt(eng), "1.00 (baseline)"])
        rows.append([f"boot → mirror answers /v2/ ({label})", *fmt(mir),
                     f"{median(mir) / median(eng):.2f} × engine"])
    man_run = [m["run"] for m in manual]
    man_wall = [m["wall"] for m in manual]
    rows.append(["manual `systemctl start` of the refresh (wall)", *fmt(man_wall), "1.00 (baseline)"])
    rows.append(["  of which the service's run (ExecMainStart → Exit)", *fmt(man_run),
                 f"{median(man_run) / median(man_wall):.2f} × manual"])
    fin = [t["finished"] for t in timers]
    sta = [t["start"] for t in timers]
    rows.append(["timer due → refresh finished", *fmt(fin), f"{median(fin) / median(man_wall):.2f} × manual"])
    rows.append(["  of which due → refresh started", *fmt(sta), f"{median(sta) / median(man_wall):.2f} × manual"])
    print(table(["case", "median (s)", "p90 (s)", "ratio"], rows, "lrrr"))
    print()
    for case in ("up", "down"):
        modes = [b["mode"] for b in boots[case]]
        print(f"upstream {case}: the first answer came from a mirror in mode "
              + ", ".join(f"{mode} {modes.count(mode)}/{len(modes)}" for mode in sorted(set(modes))))
    print(f"engine answers {median(engine_all):.2f} s after `docker start` (median of all boots); "
          f"the mirror answers {median([b['mirror'] for b in boots['up']]) - median([b['engine'] for b in boots['up']]):+.2f} s "
          f"after its engine with the upstream up, "
          f"{median([b['mirror'] for b in boots['down']]) - median([b['engine'] for b in boots['down']]):+.2f} s "
          f"with it down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
