"""The warm's one queue of blob downloads: every blob of a run, biggest first, N at once.

Images put their blobs in as soon as their manifests are read, so no image's
downloads wait for another image's manifest, and a download slot is never
held by a blob that waits for something else. On a shared link the biggest
blobs are the long poles: started first, the run ends when the link has
carried the last byte, not one big blob later.

Small blobs (image configs, tiny layers) cost a request's latency, not link
time. Left to the end they would leave the link idle while they are asked
for one after another, so `reserve` of the `workers` slots never hold a big
blob: the small ones go through them while the big ones fill the link.

Requests start no more than `starting` at a time: a task holds a start slot
from the moment it is taken until its work calls `started()` (its answer
began) or ends, and other requests (the images' manifests) take one with
`setting_up()`. A request waiting for its answer is only latency, and a
burst of them makes each wait longer (a proxy sets a cold blob up with
several upstream round trips, some of them, in distribution, under one
lock). The slots go to big blobs first, then manifests, then small blobs:
the first bytes flow as soon as one manifest is read, the biggest blob, the
one the run ends with, is never the last to start, and the manifests that
name further blobs are read while the link is busy.

A task is one blob for one repository. The tasks of one group (one digest of
one upstream: the same blob in several repositories) run one after the
other, never at once: the first fetches it, the next find it stored and only
link it. A proxy keys what it fetches by repository, so two requests at once
for one digest in two repositories would cross the link twice.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from contextlib import contextmanager
from typing import Callable, Hashable

Work = Callable[[Callable[[], None]], object]


class Task:
    """One queued blob; `value` (what `work` returned) or `error` once `done` is set."""

    def __init__(self, key: Hashable, group: Hashable, size: int, work: Work):
        self.key, self.group, self.size, self.work = key, group, size, work
        self.value: object = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._callbacks: list[Callable[[Task], None]] = []
        self._lock = threading.Lock()

    def add_done_callback(self, callback: Callable[["Task"], None]) -> None:
        """Call `callback(task)` once the task is done: now, when it already is."""
        with self._lock:
            if not self.done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def _run(self, started: Callable[[], None]) -> list[BaseException]:
        """Do the work, then call back; returns what the callbacks raised (a worker must live on)."""
        try:
            self.value = self.work(started)
        except Exception as err:  # the task's outcome: its waiters decide what it means
            self.error = err
        started()
        with self._lock:
            self.done.set()
            callbacks, self._callbacks = self._callbacks, []
        raised = []
        for callback in callbacks:
            try:
                callback(self)
            except Exception as err:
                raised.append(err)
        return raised


class BlobQueue:
    """`workers` threads, the biggest ready task first, `starting` of them setting up at
    a time, at most `workers - reserve` on blobs of `small` bytes or more; see the
    module's docstring."""

    def __init__(self, workers: int, starting: int | None = None, small: int = 0, reserve: int = 0,
                 name: str = "blob"):
        workers = max(1, workers)
        self._starting = max(1, starting or workers)
        self._small = small
        self._big_slots = max(1, workers - reserve)
        self._setting_up = self._big_running = self._others_waiting = self._idle = 0
        self._ready: dict[bool, list[tuple[int, int, Task]]] = {True: [], False: []}  # big?: a heap
        self._order = itertools.count()
        self._tasks: dict[Hashable, Task] = {}
        self._behind: dict[Hashable, deque[Task]] = {}  # group -> its tasks waiting for the one running
        self._wakeup = threading.Condition()
        self._closing = False
        self.callback_errors: list[BaseException] = []   # a bug in a waiter, raised again by its owner
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{n}", daemon=True)
                         for n in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, key: Hashable, group: Hashable, size: int, work: Work) -> tuple[Task, bool]:
        """The task for `key` and whether this call made it (a second submit of a key shares the first's).

        `work(started)` does the task; it calls `started()` once its download
        began (calling it again, or not at all, is harmless)."""
        with self._wakeup:
            if self._closing:
                raise RuntimeError("blob queue closed")
            if key in self._tasks:
                return self._tasks[key], False
            task = self._tasks[key] = Task(key, group, size, work)
            if group in self._behind:
                self._behind[group].append(task)
            else:
                self._behind[group] = deque()
                self._push(task)
            return task, True

    @contextmanager
    def setting_up(self):
        """Hold a start slot for a request that is not a task (a manifest) while it waits for its answer."""
        with self._wakeup:
            self._others_waiting += 1
            # A big blob that an idle worker would start goes first.
            while self._setting_up >= self._starting or (self._big_startable() and self._idle):
                self._wakeup.wait()
            self._others_waiting -= 1
            self._setting_up += 1
        try:
            yield
        finally:
            with self._wakeup:
                self._setting_up -= 1
                self._wakeup.notify_all()

    def close(self) -> None:
        """Let the tasks already in run to their end, then stop the workers."""
        with self._wakeup:
            self._closing = True
            self._wakeup.notify_all()
        for thread in self._threads:
            thread.join()

    def _big(self, task: Task) -> bool:
        return task.size >= self._small

    def _push(self, task: Task) -> None:
        heapq.heappush(self._ready[self._big(task)], (-task.size, next(self._order), task))
        self._wakeup.notify_all()

    def _big_startable(self) -> bool:
        return bool(self._ready[True]) and self._big_running < self._big_slots

    def _next(self) -> Task | None:
        """The task to start now, taken off its heap: a big one, else a small one when no
        other request waits for a slot; the biggest of them."""
        if self._setting_up >= self._starting:
            return None
        if self._big_startable():
            return heapq.heappop(self._ready[True])[2]
        if self._ready[False] and not self._others_waiting:
            return heapq.heappop(self._ready[False])[2]
        return None

    def _once_started(self) -> Callable[[], None]:
        """The `started` of one task: gives its start slot back, the first time only."""
        pending = [True]

        def started() -> None:
            with self._wakeup:
                if pending:
                    pending.clear()
                    self._setting_up -= 1
                    self._wakeup.notify_all()

        return started

    def _work(self) -> None:
        while True:
            with self._wakeup:
                self._idle += 1
                task = self._next()
                while task is None:
                    if self._closing and not self._behind:
                        self._idle -= 1
                        self._wakeup.notify_all()
                        return
                    self._wakeup.wait()
                    task = self._next()
                self._idle -= 1
                big = self._big(task)
                self._setting_up += 1
                self._big_running += big
            raised = task._run(self._once_started())
            with self._wakeup:
                self.callback_errors += raised
                self._big_running -= big
                waiting = self._behind[task.group]
                if waiting:
                    self._push(waiting.popleft())
                else:
                    del self._behind[task.group]
                self._wakeup.notify_all()
