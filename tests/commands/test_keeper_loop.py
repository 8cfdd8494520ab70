"""The keeper's decisions, without a Docker engine: when it stops, and that there is one.

`connect` is the real one pointed at no engine (DOCKER_HOST names a socket
that does not exist), so these run on a host without Docker too. What the
keeper does to containers is in test_keeper.py, on a real engine.
"""

import itertools
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from mirror.services import keeper
from mirror.config import settings
from mirror.engine.client import connect
from mirror.errors import HostToolError, KeeperRunning
from mirror.host import locks
from mirror.host.layout import Layout
from mirror.services import install
from support.configs import write_config


@pytest.fixture(autouse=True)
def no_engine(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")


def config(tmp_path, **overrides):
    (tmp_path / "mirror").mkdir(exist_ok=True)   # a keeper keeps a mirror directory that exists
    return write_config(tmp_path / ".config", DOCKER_MIRROR_PATH=str(tmp_path / "mirror"), **overrides)


def run_keeper(path, cycles=3):
    lines = []
    code = keeper.run(lambda: settings.load(path), connect, log=lines.append, cycles=cycles)
    return code, lines


def test_the_keeper_stops_when_the_mirror_is_switched_off(tmp_path):
    path = config(tmp_path)
    # switched off for good: the second reading, a moment later, says so too
    loads = itertools.chain([settings.load(path)],
                            itertools.repeat(settings.load(config(tmp_path, ENABLE_DOCKER_MIRROR=False))))
    lines = []
    code = keeper.run(lambda: next(loads), connect, log=lines.append, cycles=3)
    assert code == 0
    assert "the mirror is switched off in .config: the keeper stops" in lines
    # it tried to take down what a late check might have started, and said why it could not
    assert any(line.startswith("error: cannot reach the Docker engine") for line in lines)
    assert locks.holder(tmp_path / "mirror" / ".keeper.lock") is None   # the lock went with it


def test_the_keeper_stops_when_switched_off_alone(tmp_path):
    code, lines = run_keeper(config(tmp_path, DOCKER_MIRROR_KEEPER=False))
    assert code == 0 and lines[-1] == "the keeper is switched off in .config: the keeper stops"


def test_the_keeper_stops_when_its_config_is_gone(tmp_path):
    path = config(tmp_path)
    first = settings.load(path)
    os.unlink(path)
    calls = iter([first])
    code = keeper.run(lambda: next(calls, None) or settings.load(path), connect, log=(lines := []).append,
                      cycles=3)
    assert code == 0 and lines[-1].endswith(": the keeper stops") and str(path) in lines[-1]


def test_the_keeper_stops_when_the_mirror_moves(tmp_path):
    path = config(tmp_path)
    loads = itertools.chain([settings.load(path)], itertools.repeat(settings.load(write_config(
        path, DOCKER_MIRROR_PATH=str(tmp_path / "elsewhere")))))
    lines = []
    assert keeper.run(lambda: next(loads), connect, log=lines.append, cycles=3) == 0
    assert lines[-1].startswith(f"the mirror moved to {tmp_path / 'elsewhere'}: this keeper stops")


def test_one_keeper_per_mirror_directory(tmp_path):
    path = config(tmp_path)
    root = tmp_path / "mirror"
    holding, release = threading.Event(), threading.Event()

    def hold():
        with locks.held(root / ".keeper.lock") as lock:
            locks.record_pid(lock)
            holding.set()
            release.wait(10)

    other = threading.Thread(target=hold)
    other.start()
    try:
        holding.wait(5)
        assert locks.holder(root / ".keeper.lock") == os.getpid()
        with pytest.raises(KeeperRunning) as caught:
            run_keeper(path)
        assert str(caught.value) == f"a keeper already runs for {root} (pid {os.getpid()})"
        assert caught.value.exit_code == 75
    finally:
        release.set()
        other.join()
    assert locks.holder(root / ".keeper.lock") is None


class WentOnToCheck(Exception):
    """Raised by `connect` below: the keeper, not stopped, went on to check the mirrors."""


def reach_the_check():
    raise WentOnToCheck


def test_the_keeper_goes_on_when_its_config_vanishes_for_a_moment(tmp_path):
    # kconfiglib's save (write_config): os.replace(.config, .config.old), then .config
    # written anew. A keeper reading in between must not stop for good (exit 0: systemd's
    # Restart=on-failure would leave it stopped).
    path = config(tmp_path)
    reads = 0

    def load():
        nonlocal reads
        reads += 1
        if reads == 2:   # the loop's first reading falls into a save
            os.replace(path, f"{path}.old")
            threading.Timer(0.3, lambda: write_config(path, DOCKER_MIRROR_PATH=str(tmp_path / "mirror"))).start()
        return settings.load(path)

    lines = []
    started = time.monotonic()
    with pytest.raises(WentOnToCheck):
        keeper.run(load, reach_the_check, log=lines.append, cycles=1)
    assert reads == 3 and not any("the keeper stops" in line for line in lines), lines
    assert time.monotonic() - started < keeper.CONFIRM_AFTER + 2
    assert locks.holder(tmp_path / "mirror" / ".keeper.lock") is None


def test_a_config_gone_for_good_still_stops_the_keeper_after_a_second_look(tmp_path):
    path = config(tmp_path)
    first = settings.load(path)
    os.unlink(path)
    calls = iter([first])
    started = time.monotonic()
    code = keeper.run(lambda: next(calls, None) or settings.load(path), reach_the_check,
                      log=(lines := []).append, cycles=1)
    assert code == 0 and lines[-1].endswith(": the keeper stops") and str(path) in lines[-1]
    assert time.monotonic() - started >= keeper.CONFIRM_AFTER


STUBBORN = """
import fcntl, os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a keeper stuck where SIGTERM does not end it
lock = open(sys.argv[1], "a+")
fcntl.flock(lock, fcntl.LOCK_EX)
lock.seek(0); lock.truncate(); lock.write(f"{os.getpid()}\\n"); lock.flush()
print("holding", flush=True)
time.sleep(60)
"""


def test_setup_says_so_when_the_old_keeper_does_not_stop(tmp_path, monkeypatch):
    """Setup restarts a keeper started with other inputs; one that outlives the stop timeout is
    named, not reported as restarted beside a second keeper that could not take the lock."""
    loaded = settings.load(config(tmp_path, DOCKER_MIRROR_KEEPER=True))
    layout = Layout.of(loaded)
    monkeypatch.setattr(install, "KEEPER_STOP_TIMEOUT", 0.5)
    holder = subprocess.Popen([sys.executable, "-c", STUBBORN, str(layout.keeper_lock)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        with pytest.raises(HostToolError) as caught:
            install.start_keeper(loaded, layout)   # it recorded no inputs: stale, to restart
        assert f"the keeper (pid {holder.pid}) still holds {layout.keeper_lock}" in str(caught.value)
        assert holder.poll() is None and locks.holder(layout.keeper_lock) == holder.pid
        assert "nothing was changed" not in str(caught.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
