"""systemd as PID 1, for real: the mirror on a booted Debian host (issue 8, part 2).

A Debian root file system with systemd and the Docker engine, built from the
distribution's packages (tests/support/systemd_host.py; once per machine,
reused by its recipe hash), is booted as a container on the host's network.
The product is copied in as a clean tree, with the test's settings as its
defconfigs/default (the Docker Hub mirror on a 56xx port in front of an
upstream registry on the host's loopback), and then, as a user would: the
README's Quick start command (whose `make defconfig` writes .config),
systemctl, make, and reboots. The
mirror is checked from outside: HTTP from the host, and `docker pull` by the
engine inside.

The tests run in file order on one host, each leaving it as the next expects;
a test that needs the upstream up or down says so first.
"""

from __future__ import annotations

import re
import time

import pytest

from support.systemd_host import (
    IMAGES, KEEPER, LAST_REFRESH, LIST_FILE, MIRROR_ROOT, PRODUCT_DIR,
    REFRESH_SERVICE, REFRESH_TIMER, MirrorHost, calendar_at, docker0_state, parse_systemd_time,
    wait_for,
)

pytestmark = pytest.mark.engine

UNITS = (KEEPER, REFRESH_SERVICE, REFRESH_TIMER)
MISSING_IMAGE = "library/dmtest-missing:1"


@pytest.fixture(scope="module")
def m(tmp_path_factory):
    docker0_before = docker0_state()
    mirror = MirrorHost.create(tmp_path_factory.mktemp("systemd-host"))
    mirror.docker0_before = docker0_before
    yield mirror
    mirror.close()


def said(result) -> str:
    return f"(exit {result.returncode})\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"


def upstream_up(m: MirrorHost) -> None:
    m.upstream.start()


def upstream_down(m: MirrorHost) -> None:
    m.upstream.stop()


def setup_ok(m: MirrorHost) -> str:
    """`make docker-mirror`, which must succeed and leave the mirror answering."""
    done = m.host.make("docker-mirror")
    assert done.returncode == 0, f"make docker-mirror failed {said(done)}\n{m.host.diagnose()}"
    assert m.wait_answering(30), f"mirror does not answer after make docker-mirror\n{m.host.diagnose()}"
    assert m.wait_refresh_idle(120), f"the refresh make started did not end\n{m.host.diagnose()}"
    return done.stdout


def assert_cached_images_pull(m: MirrorHost) -> None:
    """Every image kept warm pulls through the mirror with the upstream's digest, by HTTP
    from the host and by `docker pull` in the host under test."""
    for ref, digest in m.digests.items():
        assert m.manifest_digest(ref) == digest, (
            f"{ref}: the mirror serves {m.manifest_digest(ref)}, the upstream pushed {digest}\n"
            f"{m.host.diagnose()}")
        pulled, output = m.docker_pull(ref)
        assert pulled == digest, f"docker pull {ref}: got {pulled}, want {digest}:\n{output}"


def blobs_and_manifests(m: MirrorHost) -> list[str]:
    return [line for line in m.storage_listing() if "/blobs/" in line or "/_manifests/" in line]


def assert_removed(m: MirrorHost, cache_before: list[str], output: str) -> None:
    """Stopped, disabled and deleted; the cache untouched; and it stays that way."""
    why = f"{output}\n{m.host.diagnose()}"
    assert m.containers() == [], f"registry containers left in the engine: {m.containers()}\n{why}"
    assert not m.answers(), f"the mirror still answers on {m.url}\n{why}"
    assert m.installed_unit_files() == [], f"unit files left: {m.installed_unit_files()}\n{why}"
    for unit in UNITS:
        enabled = m.host.systemctl("is-enabled", unit).stdout.strip()
        active = m.host.systemctl("is-active", unit).stdout.strip()
        assert enabled not in ("enabled", "static", "linked"), f"{unit} is still {enabled}\n{why}"
        assert active not in ("active", "activating", "reloading"), f"{unit} is still {active}\n{why}"
    timers = m.host.systemctl("list-timers", "--all", "--no-legend").stdout
    assert REFRESH_TIMER not in timers, f"the refresh timer is still scheduled:\n{timers}"
    assert blobs_and_manifests(m) == cache_before, f"the cache changed\n{why}"
    # Nothing brings it back behind the user's back (a keeper, a restart policy).
    time.sleep(5)
    assert m.containers() == [] and not m.answers(), f"the mirror came back after removal\n{why}"


# ---------------------------------------------------------------- boot and Quick start


def test_host_boots_with_systemd_and_nested_engine(m):
    host = m.host
    assert host.exec(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    state = host.system_state()
    assert state == "running", f"system is {state!r}:\n{host.systemctl('--failed').stdout}"
    driver = host.nested_docker("info", "--format", "{{.Driver}}")
    assert driver.stdout.strip() == "vfs", f"nested engine: {said(driver)}"
    assert docker0_state() == m.docker0_before, "the nested engine changed the host's docker0"


def test_quickstart_brings_the_mirror_up(m):
    done = m.quickstart()
    m.quickstart_output = done.stdout + done.stderr
    assert done.returncode == 0, f"scripts/quickstart.sh {said(done)}\n{m.host.diagnose()}"
    config = m.config_text()
    assert f"CONFIG_DOCKER_MIRROR_PORT={m.port}\n" in config, f"make defconfig wrote:\n{config}"
    assert m.answers(), f"{m.url}/v2/ does not answer after the Quick start\n{m.host.diagnose()}"
    assert m.mode() == "pull-through", m.host.diagnose()
    assert m.wait_refresh_idle(120), f"the first refresh did not end\n{m.host.diagnose()}"
    last = m.last_refresh()
    assert last and last.get("result") == "ok", f"first refresh: {last}\n{m.host.diagnose()}"
    for ref, digest in m.digests.items():
        assert m.manifest_digest(ref) == digest, f"{ref}\n{m.host.diagnose()}"
    status = m.host.make("docker-mirror-status")
    assert status.returncode == 0, f"make docker-mirror-status {said(status)}"
    for repo in IMAGES:
        assert repo in status.stdout, f"{repo} not listed as cached:\n{status.stdout}"


def test_units_installed_enabled_and_timer_scheduled(m):
    host = m.host
    for unit in UNITS:
        assert host.exists(f"/etc/systemd/system/{unit}"), f"{unit} not installed"
    for unit in (KEEPER, REFRESH_TIMER):
        enabled = host.systemctl("is-enabled", unit).stdout.strip()
        assert enabled == "enabled", f"{unit} is {enabled!r}\n{host.diagnose()}"
    active = host.systemctl("is-active", REFRESH_TIMER).stdout.strip()
    assert active == "active", f"{REFRESH_TIMER} is {active!r}\n{host.diagnose()}"
    timers = host.systemctl("list-timers", "--all", "--no-legend", REFRESH_TIMER).stdout
    line = next((l for l in timers.splitlines() if REFRESH_TIMER in l), "")
    assert line and not line.startswith(("-", "n/a")), f"no next run listed:\n{timers}"
    status = host.make("docker-mirror-status").stdout
    next_line = next((l for l in status.splitlines() if l.startswith("Next refresh:")), "")
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", next_line), f"status says: {next_line!r}"


def test_keeper_unit_runs(m):
    """docker-mirror-keeper.service is a long-running keeper (restarted when it fails), running
    after the Quick start, not only from the next boot on."""
    host = m.host
    show = host.systemctl("show", KEEPER, "-p", "ActiveState", "-p", "SubState", "-p", "Restart",
                          "-p", "Type").stdout
    props = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    assert (props.get("ActiveState"), props.get("SubState")) == ("active", "running"), (
        f"{KEEPER}: {props}\n{host.diagnose()}")
    assert props.get("Restart") == "on-failure", f"{KEEPER}: {props}"


def test_units_bound_memory_and_tasks(m):
    """The keeper and the refresh as systemd loaded them: memory (no swap on top) and tasks
    bounded (docs/setup.md "Resource limits of the units"), and the keeper running inside them."""
    host = m.host
    for unit in (KEEPER, REFRESH_SERVICE):
        show = host.systemctl("show", unit, "-p", "MemoryMax", "-p", "TasksMax", "-p", "MemorySwapMax",
                              "-p", "CPUWeight").stdout
        props = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
        assert (props.get("MemoryMax"), props.get("TasksMax"), props.get("MemorySwapMax")) == \
            (str(2 << 30), "1024", "0"), f"{unit}: {props}\n{host.read('/etc/systemd/system/' + unit)}"
        assert props.get("CPUWeight") == ("20" if unit == REFRESH_SERVICE else "[not set]"), f"{unit}: {props}"
    show = host.systemctl("show", KEEPER, "-p", "TasksCurrent", "-p", "ActiveState").stdout
    props = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    assert props.get("ActiveState") == "active" and 0 < int(props.get("TasksCurrent", "0")) < 1024, props


def test_a_second_checkout_with_the_same_prefix_shares_or_is_refused(m):
    """kdevops trees on one host, all with the default prefix: a second checkout with the
    same settings uses the first's mirror; with another port it is refused (exit non-zero,
    naming the first's .config and the port). Either way the first's container, keeper unit
    and keeper process stay as they were."""
    host, second = m.host, "/opt/second-tree"
    unit_path = f"/etc/systemd/system/{KEEPER}"
    unit_text, keeper_pid, container = host.read(unit_path), active_pid(m, KEEPER), m.inspect("{{.Id}}")
    # the status names the real unit
    assert f"journalctl -u {KEEPER}" in host.make("docker-mirror-status").stdout
    host.exec(["cp", "-a", PRODUCT_DIR, second])
    try:
        same = host.exec(["make", "-s", "docker-mirror"], workdir=second, check=False)
        assert same.returncode == 0, said(same)
        assert f"was set up by {PRODUCT_DIR}/.config with the same settings" in same.stdout, said(same)
        host.exec(["sed", "-i", f"s/^CONFIG_DOCKER_MIRROR_PORT=.*/CONFIG_DOCKER_MIRROR_PORT={m.port + 1}/",
                   f"{second}/.config"])
        other = host.exec(["make", "-s", "docker-mirror"], workdir=second, check=False)
        assert other.returncode != 0, said(other)
        assert f"belong to the mirror of {PRODUCT_DIR}/.config" in other.stderr, said(other)
        assert f"DOCKER_MIRROR_PORT: {m.port} there, {m.port + 1} here" in other.stderr, said(other)
        assert (host.read(unit_path), active_pid(m, KEEPER), m.inspect("{{.Id}}")) == \
            (unit_text, keeper_pid, container)
        assert m.answers()
    finally:
        host.exec(["rm", "-rf", second])


def active_pid(m: MirrorHost, unit: str) -> str:
    show = m.host.systemctl("show", unit, "-p", "ActiveState", "-p", "MainPID").stdout
    props = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    return props.get("MainPID", "0") if props.get("ActiveState") == "active" else "0"


def test_an_upgrade_replaces_the_units_earlier_versions_named_otherwise(m):
    """Earlier versions installed the keeper as docker-mirror.service running `watch`, and the
    refresh as docker-mirror-update.service and .timer: the next `make docker-mirror` stops,
    disables and deletes them and runs the units named after the thing (keeper, refresh),
    the mirror's containers left running as they were."""
    host = m.host
    older = {KEEPER: "docker-mirror.service", REFRESH_SERVICE: "docker-mirror-update.service",
             REFRESH_TIMER: "docker-mirror-update.timer"}
    host.systemctl("disable", "--now", KEEPER, REFRESH_TIMER, check=True)
    for name, old in older.items():
        text = host.read(f"/etc/systemd/system/{name}")
        text = text.replace(" keeper\n", " watch\n").replace(f"Unit={REFRESH_SERVICE}",
                                                              f"Unit={older[REFRESH_SERVICE]}")
        host.exec(["rm", f"/etc/systemd/system/{name}"])
        host.write(f"/etc/systemd/system/{old}", text)
    assert " watch\n" in host.read(f"/etc/systemd/system/{older[KEEPER]}")
    host.systemctl("daemon-reload", check=True)
    host.systemctl("enable", "--now", older[KEEPER], older[REFRESH_TIMER], check=True)
    # the older unit's keeper runs, by the verb's older name
    assert wait_for(lambda: active_pid(m, older[KEEPER]) != "0", 30), \
        host.diagnose(units=tuple(older.values()))
    before = sorted(m.containers())

    output = setup_ok(m)
    for old in older.values():
        assert not host.exists(f"/etc/systemd/system/{old}"), f"{old} is still installed\n{output}"
        assert host.systemctl("is-enabled", old).stdout.strip() not in ("enabled", "static", "linked"), output
        assert host.systemctl("is-active", old).stdout.strip() not in ("active", "activating"), output
    assert wait_for(lambda: active_pid(m, KEEPER) != "0", 30), host.diagnose()
    for unit in (KEEPER, REFRESH_TIMER):
        assert host.systemctl("is-enabled", unit).stdout.strip() == "enabled", f"{unit}\n{host.diagnose()}"
    assert host.systemctl("is-active", REFRESH_TIMER).stdout.strip() == "active", host.diagnose()
    assert sorted(m.containers()) == before, f"the containers were re-created\n{output}"
    assert m.answers(), host.diagnose()


# ---------------------------------------------------------------- the refresh


def test_refresh_runs_when_its_service_is_started(m):
    upstream_up(m)
    before = m.last_refresh() or {}
    done = m.host.systemctl("start", REFRESH_SERVICE, timeout=300)
    assert done.returncode == 0, f"systemctl start {REFRESH_SERVICE} {said(done)}\n{m.host.diagnose()}"
    after = m.last_refresh() or {}
    assert after.get("log") and after.get("log") != before.get("log"), (
        f"{LAST_REFRESH} not rewritten: before {before}, after {after}")
    assert after.get("result") == "ok" and after.get("failed") == [], after
    times = m.unit_times(REFRESH_SERVICE)
    assert times["result"] == "success" and times["status"] == "0", times
    log = m.host.read(after["log"]) or ""
    assert "refresh ok" in log, log
    for ref, digest in m.digests.items():
        lines = [l for l in log.splitlines() if f"docker.io/{ref}:" in l and digest[7:19] in l]
        assert lines and " ok " in lines[0], f"{ref} ({digest}) not reported ok in the log:\n{log}"


def test_failed_refresh_shows_in_systemctl_status_and_mirror_status(m):
    upstream_up(m)
    good_list = m.host.read(LIST_FILE)
    m.host.write(LIST_FILE, good_list + f"{MISSING_IMAGE}\n")
    try:
        done = m.host.systemctl("start", REFRESH_SERVICE, timeout=300)
        assert done.returncode != 0, f"a refresh with a missing image succeeded {said(done)}"
        assert m.host.systemctl("is-failed", REFRESH_SERVICE).stdout.strip() == "failed"
        status = m.host.systemctl("status", REFRESH_SERVICE).stdout
        assert "Active: failed" in status, status
        last = m.last_refresh() or {}
        assert last.get("result") == "failed", last
        assert any("dmtest-missing" in f for f in last.get("failed", [])), last
        mirror_status = m.host.make("docker-mirror-status").stdout
        refresh_lines = mirror_status[mirror_status.find("Last refresh"):]
        assert "failed" in refresh_lines and "dmtest-missing" in refresh_lines, mirror_status
    finally:
        m.host.write(LIST_FILE, good_list)
    done = m.host.systemctl("start", REFRESH_SERVICE, timeout=300)
    assert done.returncode == 0, f"the refresh after the fix {said(done)}\n{m.host.diagnose()}"
    assert m.host.systemctl("is-failed", REFRESH_SERVICE).stdout.strip() != "failed"
    assert (m.last_refresh() or {}).get("result") == "ok"


def test_refresh_random_delay_comes_from_kconfig(m):
    """CONFIG_DOCKER_MIRROR_REFRESH_RANDOM_DELAY (minutes, 0 = none) sets RandomizedDelaySec."""
    upstream_up(m)
    try:
        done = m.set_config(DOCKER_MIRROR_REFRESH_RANDOM_DELAY=7)
        assert done.returncode == 0, f"make olddefconfig {said(done)}"
        assert "CONFIG_DOCKER_MIRROR_REFRESH_RANDOM_DELAY=7" in m.config_text(), (
            "make olddefconfig dropped CONFIG_DOCKER_MIRROR_REFRESH_RANDOM_DELAY: Kconfig does not know it")
        setup_ok(m)
        delay = m.host.systemctl("show", REFRESH_TIMER, "-p", "RandomizedDelayUSec", "--value").stdout.strip()
        assert delay == "7min", (f"{REFRESH_TIMER} RandomizedDelayUSec={delay!r}:\n"
                                 f"{m.host.read('/etc/systemd/system/' + REFRESH_TIMER)}")
    finally:
        m.set_config(DOCKER_MIRROR_REFRESH_RANDOM_DELAY=0)
        setup_ok(m)
    delay = m.host.systemctl("show", REFRESH_TIMER, "-p", "RandomizedDelayUSec", "--value").stdout.strip()
    assert delay == "0", f"RANDOM_DELAY=0 gives RandomizedDelayUSec={delay!r}"


def test_timer_runs_the_refresh_when_due(m):
    """OnCalendar set to one exact second a minute ahead: the timer starts the refresh."""
    upstream_up(m)
    host = m.host
    due = int(host.now()) + 60
    try:
        done = m.set_config(DOCKER_MIRROR_REFRESH_ON_CALENDAR=calendar_at(due))
        assert done.returncode == 0, f"make olddefconfig {said(done)}"
        setup_ok(m)
        timer = host.read(f"/etc/systemd/system/{REFRESH_TIMER}") or ""
        assert f"OnCalendar={calendar_at(due)}" in timer, timer
        # CONFIG_DOCKER_MIRROR_REFRESH_RANDOM_DELAY=0 (the test's defconfig): no random delay,
        # and AccuracySec=1s, so the refresh starts when due.
        delay = host.systemctl("show", REFRESH_TIMER, "-p", "RandomizedDelayUSec", "--value").stdout.strip()
        assert delay == "0", f"RandomizedDelayUSec={delay}\n{timer}"
        assert "AccuracySec=1s" in timer, timer
        nxt = host.systemctl("show", REFRESH_TIMER, "--timestamp=us+utc", "-p",
                             "NextElapseUSecRealtime", "--value").stdout
        assert parse_systemd_time(nxt) == due, f"next elapse {nxt!r}, due {calendar_at(due)}"
        before = m.last_refresh() or {}
        assert host.now() < due - 5, "setting the schedule took the whole minute"

        def refreshed():
            after = m.last_refresh() or {}
            return after if after.get("log") != before.get("log") and m.refresh_idle() else None

        after = wait_for(refreshed, timeout=due - host.now() + 30, interval=1)
        assert after, (f"no refresh by {calendar_at(time.time())} for a timer due at "
                       f"{calendar_at(due)}\n{host.diagnose()}")
        assert after.get("result") == "ok", after
        assert "refresh ok" in (host.read(after["log"]) or ""), f"log {after['log']}"
        times = m.unit_times(REFRESH_SERVICE)
        assert times["start"] and due - 0.5 <= times["start"] <= due + 5, (
            f"the refresh started at {times['start']}, not when the timer was due ({due})")
        last_trigger = host.systemctl("show", REFRESH_TIMER, "--timestamp=us+utc", "-p",
                                      "LastTriggerUSec", "--value").stdout
        assert (parse_systemd_time(last_trigger) or 0) >= due, f"LastTriggerUSec={last_trigger!r}"
        m.timer_figures = {"due_to_start": times["start"] - due, "due_to_exit": times["exit"] - due}
    finally:
        m.set_config(DOCKER_MIRROR_REFRESH_ON_CALENDAR="*-*-* 02:00:00")
        setup_ok(m)


# ---------------------------------------------------------------- staying up


def test_killed_registry_comes_back(m):
    upstream_up(m)
    assert m.answers(), m.host.diagnose()
    pid = m.inspect("{{.State.Pid}}")
    started = m.inspect("{{.State.StartedAt}}")
    assert pid and pid != "0", f"no registry process: {pid}\n{m.host.diagnose()}"
    m.host.exec(["kill", "-KILL", pid])
    back = wait_for(lambda: m.inspect("{{.State.StartedAt}}") not in (started, None) and m.answers(),
                    timeout=30)
    assert back, f"the registry did not come back within 30 s of kill -9\n{m.host.diagnose()}"
    assert m.mode() == "pull-through"
    for ref, digest in m.digests.items():
        assert m.manifest_digest(ref) == digest


def test_engine_restart_with_upstream_down_switches_to_offline(m):
    """No reboot: the Docker engine alone restarts (a package upgrade does that) while the
    upstream is unreachable. distribution 2.8 panics at start without its upstream; within
    30 s, and with nobody running anything, the mirror must serve its cache read-only."""
    upstream_up(m)
    setup_ok(m)
    assert m.mode() == "pull-through", f"precondition: {m.mode()}\n{m.host.diagnose()}"
    upstream_down(m)
    restarted = m.host.systemctl("restart", "docker.service", timeout=120)
    assert restarted.returncode == 0, f"systemctl restart docker {said(restarted)}"
    begun = time.monotonic()
    back = wait_for(lambda: m.answers() and m.mode() == "offline", timeout=30, interval=0.5)
    restarts = m.inspect("{{.RestartCount}}")
    assert back, (f"30 s after the engine restart: answering={m.answers()}, mode={m.mode()}, "
                  f"restarts={restarts}\n{m.host.diagnose()}")
    m.engine_restart_seconds = time.monotonic() - begun
    assert_cached_images_pull(m)
    status = m.host.make("docker-mirror-status")
    assert "(offline)" in status.stdout, status.stdout


def test_reboot_with_upstream_down_boots_offline(m):
    """A reboot with no upstream: the boot path brings the mirror up read-only."""
    upstream_down(m)
    m.host.reboot()
    assert m.wait_answering(60), f"no mirror 60 s after the boot\n{m.host.diagnose()}"
    m.boot_to_answer = time.time() - m.host.started_at
    assert m.host.system_state() == "running", m.host.diagnose()
    assert m.host.systemctl("is-active", KEEPER).stdout.strip() == "active", m.host.diagnose()
    assert m.mode() == "offline", f"mode {m.mode()}\n{m.host.diagnose()}"
    assert_cached_images_pull(m)
    status = m.host.make("docker-mirror-status")
    assert status.returncode == 0 and "(offline)" in status.stdout, said(status)


# ---------------------------------------------------------------- a clean way out


def test_remove_stops_and_disables_and_keeps_the_cache(m):
    upstream_up(m)
    setup_ok(m)
    cache = blobs_and_manifests(m)
    assert cache, f"nothing cached under {MIRROR_ROOT}/registry"
    done = m.host.make("docker-mirror-remove")
    assert done.returncode == 0, f"make docker-mirror-remove {said(done)}\n{m.host.diagnose()}"
    assert_removed(m, cache, done.stdout + done.stderr)


def test_disabling_in_config_removes_and_keeps_the_cache(m):
    upstream_up(m)
    setup_ok(m)
    for unit in (KEEPER, REFRESH_TIMER):
        assert m.host.systemctl("is-enabled", unit).stdout.strip() == "enabled", m.host.diagnose()
    cache = blobs_and_manifests(m)
    saved = m.config_text()
    try:
        done = m.host.exec(["sed", "-i", "s/^CONFIG_ENABLE_DOCKER_MIRROR=y$/# CONFIG_ENABLE_DOCKER_MIRROR is not set/",
                            ".config"], workdir=PRODUCT_DIR)
        olddef = m.host.make("olddefconfig")
        assert olddef.returncode == 0, said(olddef)
        assert "# CONFIG_ENABLE_DOCKER_MIRROR is not set" in m.config_text()
        done = m.host.make("docker-mirror")
        assert done.returncode == 0, f"make docker-mirror with the mirror off {said(done)}"
        assert re.search(r"remov", done.stdout + done.stderr, re.I), (
            f"make docker-mirror does not say it removed the mirror {said(done)}")
        assert_removed(m, cache, done.stdout + done.stderr)
    finally:
        m.host.write(f"{PRODUCT_DIR}/.config", saved)


def test_purge_asks_on_a_terminal_then_deletes_the_cache(m):
    # The cache kept through the removals above still serves, upstream down.
    upstream_down(m)
    setup_ok(m)
    assert m.mode() == "offline", m.host.diagnose()
    assert_cached_images_pull(m)
    cache = blobs_and_manifests(m)

    # On a terminal it asks first; "n" keeps everything under the mirror directory.
    asked = m.host.exec(["script", "-qec", "make -s docker-mirror-remove PURGE=1", "/dev/null"],
                        workdir=PRODUCT_DIR, input="n\n", check=False, timeout=120)
    output = asked.stdout + asked.stderr
    assert MIRROR_ROOT in output and "?" in output, f"no question on a terminal {said(asked)}"
    assert m.host.exists(MIRROR_ROOT) and blobs_and_manifests(m) == cache, (
        f"answering n deleted the cache {said(asked)}")

    # No terminal: PURGE=1 is the answer.
    done = m.host.make("docker-mirror-remove", "PURGE=1")
    assert done.returncode == 0, f"make docker-mirror-remove PURGE=1 {said(done)}\n{m.host.diagnose()}"
    assert not m.host.exists(MIRROR_ROOT), f"{MIRROR_ROOT} still there {said(done)}"
    assert m.containers() == [] and not m.answers(), m.host.diagnose()
    assert m.installed_unit_files() == [], m.installed_unit_files()


def test_host_network_untouched(m):
    assert docker0_state() == m.docker0_before


# ---------------------------------------------------------------- the same host without systemd


@pytest.fixture(scope="module")
def plain(m, tmp_path_factory):
    """The same root file system booted without systemd (PID 1: docker-init and a sleep),
    once the systemd host is done with (it asks for `m` to be torn down after it)."""
    mirror = MirrorHost.create(tmp_path_factory.mktemp("plain-host"), systemd=False)
    yield mirror
    mirror.close()


def test_without_systemd_quickstart_starts_engine_and_mirror(plain):
    done = plain.quickstart()
    assert done.returncode == 0, f"scripts/quickstart.sh {said(done)}\n{plain.host.diagnose()}"
    assert plain.answers() and plain.mode() == "pull-through", plain.host.diagnose()
    engine = plain.host.exec(["docker", "info", "--format", "{{.Driver}}"], check=False)
    assert engine.stdout.strip() == "vfs", said(engine)
    for ref, digest in plain.digests.items():
        assert plain.manifest_digest(ref) == digest, plain.host.diagnose()


def test_without_systemd_engine_restart_with_upstream_down_switches_to_offline(plain):
    """As on systemd hosts, with no systemd to run a keeper: the engine is stopped and
    started again (what a package upgrade's init script does) with the upstream down."""
    host = plain.host
    warmed = wait_for(lambda: (plain.last_refresh() or {}).get("result") == "ok", 90, interval=1)
    assert warmed, f"the background refresh did not finish ok: {plain.last_refresh()}\n{host.diagnose()}"
    plain.upstream.stop()
    pid = host.read("/var/run/docker.pid")
    assert pid and pid.strip().isdigit(), f"no dockerd pid file\n{host.diagnose()}"
    host.exec(["kill", "-TERM", pid.strip()])
    gone = wait_for(lambda: host.exec(["kill", "-0", pid.strip()], check=False).returncode != 0, 60)
    assert gone, f"dockerd {pid.strip()} did not stop\n{host.diagnose()}"
    started = host.exec(["bash", "scripts/start-docker-engine.sh"], workdir=PRODUCT_DIR, check=False)
    assert started.returncode == 0, said(started)
    back = wait_for(lambda: plain.answers() and plain.mode() == "offline", timeout=30, interval=0.5)
    assert back, (f"30 s after the engine restart: answering={plain.answers()}, mode={plain.mode()}, "
                  f"restarts={plain.inspect('{{.RestartCount}}')}\n{host.diagnose()}")
    assert_cached_images_pull(plain)
