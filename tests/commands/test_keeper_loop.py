"""The keeper's decisions, without a Docker engine: when it stops, and that there is one.

`connect` is the real one pointed at no engine (DOCKER_HOST names a socket
that does not exist), so these run on a host without Docker too. What the
keeper does to containers is in test_keeper.py, on a real engine.
"""

import os
import threading

import pytest

from mirror.services import keeper
from mirror.config import settings
from mirror.engine.client import connect
from mirror.errors import KeeperRunning
from mirror.host import locks
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
    loads = iter([settings.load(path), settings.load(config(tmp_path, ENABLE_DOCKER_MIRROR=False))])
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
    loads = iter([settings.load(path), settings.load(write_config(
        path, DOCKER_MIRROR_PATH=str(tmp_path / "elsewhere")))])
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
