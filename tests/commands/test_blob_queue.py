"""The warm's blob queue (services.blob_queue), on its own: biggest first, a digest never twice at
once, no more downloads set up at once than asked, every waiter told, nothing left running."""

import threading
import time

import pytest

from mirror.services.blob_queue import BlobQueue


class Recorder:
    """Work that records what ran, and how many ran (or were setting up) at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.order: list[str] = []
        self.running: dict[str, int] = {}
        self.most: dict[str, int] = {}

    def work(self, name: str, group: str, seconds: float = 0.05, start_after: float = 0.0, fail: bool = False):
        def run(started):
            with self.lock:
                self.order.append(name)
                self.running[group] = self.running.get(group, 0) + 1
                self.most[group] = max(self.most.get(group, 0), self.running[group])
            try:
                time.sleep(start_after)
                started()
                time.sleep(seconds)
                if fail:
                    raise RuntimeError(f"{name} failed")
                return name
            finally:
                with self.lock:
                    self.running[group] -= 1
        return run


def test_biggest_first_once_the_workers_are_busy():
    rec = Recorder()
    queue = BlobQueue(workers=1)
    gate = threading.Event()
    queue.submit("first", "g0", 1, lambda started: gate.wait(5))  # holds the one worker
    for name, size in (("small", 10), ("big", 1000), ("middle", 100)):
        queue.submit(name, name, size, rec.work(name, name, seconds=0))
    gate.set()
    queue.close()
    assert rec.order == ["big", "middle", "small"]


def test_a_group_runs_one_task_at_a_time_and_a_key_is_done_once():
    rec = Recorder()
    queue = BlobQueue(workers=8)
    tasks = [queue.submit(("repo", n), "digest", 100, rec.work(f"repo{n}", "digest"))[0] for n in range(4)]
    again, made = queue.submit(("repo", 0), "digest", 100, rec.work("twice", "digest"))
    others = [queue.submit(("other", n), f"d{n}", 100, rec.work(f"other{n}", "others"))[0] for n in range(4)]
    queue.close()
    assert again is tasks[0] and not made
    assert rec.most["digest"] == 1            # the same blob, never two requests at once
    assert rec.most["others"] == 4            # other blobs meanwhile, in parallel
    assert sorted(rec.order) == sorted([f"repo{n}" for n in range(4)] + [f"other{n}" for n in range(4)])
    assert all(t.done.is_set() and t.error is None for t in tasks + others)


def test_no_more_than_starting_are_set_up_at_once_and_the_rest_download_meanwhile():
    setting_up = {"now": 0, "most": 0}
    downloading = {"now": 0, "most": 0}
    lock = threading.Lock()

    def work(started):
        with lock:
            setting_up["now"] += 1
            setting_up["most"] = max(setting_up["most"], setting_up["now"])
        time.sleep(0.05)          # waiting for the answer
        with lock:
            setting_up["now"] -= 1
            downloading["now"] += 1
            downloading["most"] = max(downloading["most"], downloading["now"])
        started()
        time.sleep(0.3)           # the body
        with lock:
            downloading["now"] -= 1

    queue = BlobQueue(workers=6, starting=2)
    for n in range(6):
        queue.submit(n, n, 100 - n, work)
    queue.close()
    assert setting_up["most"] == 2
    assert downloading["most"] >= 4   # set up two at a time, downloading side by side


def test_work_that_never_says_started_gives_its_slot_back_when_it_ends():
    queue = BlobQueue(workers=4, starting=1)
    tasks = [queue.submit(n, n, 1, lambda started, n=n: n)[0] for n in range(5)]
    queue.close()
    assert [t.value for t in tasks] == list(range(5))


def test_errors_reach_every_waiter_and_a_late_waiter_is_called_at_once():
    rec = Recorder()
    queue = BlobQueue(workers=2)
    task, _ = queue.submit("bad", "bad", 1, rec.work("bad", "bad", fail=True))
    told = []
    task.add_done_callback(lambda t: told.append(("early", str(t.error))))
    assert task.done.wait(5)
    task.add_done_callback(lambda t: told.append(("late", str(t.error))))
    queue.close()
    assert told == [("early", "bad failed"), ("late", "bad failed")]


def test_a_failing_waiter_does_not_stop_the_queue_and_is_kept_for_its_owner():
    queue = BlobQueue(workers=1)
    first, _ = queue.submit("a", "a", 2, lambda started: 1)
    first.add_done_callback(lambda t: 1 / 0)
    second, _ = queue.submit("b", "b", 1, lambda started: 2)
    queue.close()
    assert second.value == 2
    assert [type(e) for e in queue.callback_errors] == [ZeroDivisionError]


def test_close_waits_for_tasks_released_behind_a_running_one():
    queue = BlobQueue(workers=2)
    done = []
    for n in range(3):
        queue.submit(("repo", n), "same", 1, lambda started, n=n: (time.sleep(0.05), done.append(n)))
    queue.close()
    assert sorted(done) == [0, 1, 2]
    with pytest.raises(RuntimeError, match="closed"):
        queue.submit("late", "late", 1, lambda started: None)


def test_small_blobs_go_through_reserved_slots_while_the_big_ones_download():
    rec = Recorder()
    finished: dict[str, float] = {}

    def timed(name, group, seconds):
        work = rec.work(name, group, seconds=seconds)

        def run(started):
            value = work(started)
            finished[name] = time.monotonic()
            return value
        return run

    queue = BlobQueue(workers=4, small=1000, reserve=1)
    for n in range(6):
        queue.submit(f"big{n}", f"big{n}", 10_000 + n, timed(f"big{n}", "big", 0.3))
    for n in range(3):
        queue.submit(f"small{n}", f"small{n}", 10 + n, timed(f"small{n}", "small", 0.02))
    queue.close()
    assert rec.most["big"] == 3                     # one slot of four kept from the big blobs
    assert max(finished[f"small{n}"] for n in range(3)) < min(finished[f"big{n}"] for n in range(6))


def test_start_slots_go_to_big_blobs_then_manifests_then_small_blobs():
    queue = BlobQueue(workers=3, starting=1, small=100)
    order, go = [], threading.Event()

    def holder(started):
        go.wait(5)    # holds the one start slot until released
        started()

    def blob(name):
        def run(started):
            order.append(name)
            started()
        return run

    queue.submit("holder", "holder", 1000, holder)
    time.sleep(0.1)
    queue.submit("small", "small", 10, blob("small"))

    def manifest():
        with queue.setting_up():
            order.append("manifest")
            time.sleep(0.05)
    reader = threading.Thread(target=manifest)
    reader.start()
    time.sleep(0.1)
    queue.submit("big", "big", 500, blob("big"))
    time.sleep(0.1)
    assert order == []
    go.set()
    reader.join(5)
    queue.close()
    assert order == ["big", "manifest", "small"]
