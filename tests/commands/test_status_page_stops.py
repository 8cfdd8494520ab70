"""The status page stops when .config no longer wants it, believed on a second look only:
a kconfiglib save (.config away for an instant) does not stop it, a lasting change does, and
a stop request during the wait ends it without a reason given (real server on loopback)."""

import dataclasses
import threading
import time

import pytest

from mirror.config import settings as settings_mod
from mirror.config.kconfig import CONFIRM_AFTER
from mirror.services import observe_serve
from support.configs import with_status_page, write_config
from support.upstream import free_port

pytestmark = pytest.mark.engine   # each sample asks the engine for the mirrors' containers


@pytest.fixture
def page(tmp_path):
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                          DOCKER_MIRROR_PORT=free_port(),
                          DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=f"http://127.0.0.1:{free_port()}")
    wanted = with_status_page(settings_mod.load(config))
    # no pause between samples: the test waits only for the second looks
    wanted = dataclasses.replace(wanted, observe=dataclasses.replace(wanted.observe, interval=0))
    off = dataclasses.replace(wanted, observe=dataclasses.replace(wanted.observe, enabled=False))
    return wanted, off


def serving(settings, reload, stop):
    """serve() in a thread: (its log lines, its exit code box, the thread)."""
    lines, code = [], []
    thread = threading.Thread(target=lambda: code.append(observe_serve.serve(settings, lines.append, stop, reload)),
                              daemon=True)
    thread.start()
    return lines, code, thread


def test_a_save_in_progress_is_ridden_out_and_a_lasting_switch_off_stops_it(page):
    wanted, off = page
    replies = iter([off, wanted, off, off])   # a save's instant, then switched off for good
    stop = threading.Event()
    started = time.monotonic()
    lines, code, thread = serving(wanted, lambda: next(replies), stop)
    thread.join(timeout=30)
    stop.set()
    assert code == [0], lines
    assert [line for line in lines if "stops" in line] == \
        ["the status page is switched off in .config: the status page stops"]
    assert next(replies, None) is None   # four readings: two looks, twice
    assert time.monotonic() - started >= 2 * CONFIRM_AFTER


def test_a_stop_during_the_second_look_ends_it_with_no_reason(page):
    wanted, off = page
    stop, reads = threading.Event(), []

    def reload():   # the stop request comes while the page is asked about
        reads.append(stop.set())
        return off

    lines, code, thread = serving(wanted, reload, stop)
    thread.join(timeout=30)
    assert code == [0] and not any("stops" in line for line in lines), lines
    assert len(reads) == 1   # no second look after the stop
