"""second_look: a keeper or status page stops only for a reason that is still there a moment
later (a kconfiglib save moves .config away for an instant), and a stop request cuts it short."""

import threading

from mirror.model.second_look import second_look


def answers(*replies):
    asked = iter(replies)
    return lambda: next(asked)


def test_a_reason_gone_on_the_second_look_is_not_believed():
    waited = []
    assert second_look(answers("the .config is gone", None), waited.append, 1.5) is None
    assert waited == [1.5]


def test_a_reason_still_there_is_believed_in_its_second_wording():
    assert second_look(answers("gone", "gone for good"), lambda _: None, 0) == "gone for good"


def test_no_reason_asks_once_and_waits_for_nothing():
    waited = []
    assert second_look(answers(None), waited.append, 1.0) is None
    assert waited == []


def test_a_wait_cut_short_by_a_stop_gives_no_answer_and_asks_no_more():
    stop = threading.Event()
    stop.set()
    assert second_look(answers("unwanted"), stop.wait, 30) is None
