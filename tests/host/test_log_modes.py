"""Logs under logs/ are 0600 whatever the umask (they may quote an upstream's error text):
a refresh log, and the output file of a detached process (the keeper's log), new or left
0644 by an older version."""

import os
import sys
import time

import pytest

from mirror.host import runlog, systemd


@pytest.fixture
def open_umask():
    old = os.umask(0)
    yield
    os.umask(old)


def test_a_refresh_log_is_0600_under_umask_0(tmp_path, open_umask):
    path = tmp_path / "logs" / "update-1.log"
    writer = runlog.RunLog(path)
    writer("upstream said: secret-ish text")
    writer.close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_detached_process_log_is_0600_new_or_old(tmp_path, open_umask):
    new = tmp_path / "keeper.log"
    old = tmp_path / "serve.log"
    old.write_text("from an older version\n")
    old.chmod(0o644)
    for output in (new, old):
        systemd.start_detached([sys.executable, "-c", "print('hello')"], cwd=tmp_path, output=output)
    deadline = time.time() + 10
    while time.time() < deadline and "hello" not in new.read_text() + old.read_text():
        time.sleep(0.05)
    assert new.stat().st_mode & 0o777 == 0o600 and old.stat().st_mode & 0o777 == 0o600
    assert old.read_text().startswith("from an older version")
