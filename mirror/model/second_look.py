"""A reason believed only when a second look, a moment later, still finds it.

kconfiglib saves .config by moving it to .config.old and writing it anew: a
question asked in that window ("is .config gone?", "is the page unwanted?")
gets a wrong answer once. Whoever acts on such an answer (a keeper or a
status page stopping for good) asks twice.
"""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")


def second_look(ask: Callable[[], T | None], wait: Callable[[float], object], after: float) -> T | None:
    """ask()'s answer, when it is not None now and still not None `after` seconds later
    (the second answer, which may say it better); None otherwise. `wait(after)` returns
    something true when it was interrupted (threading.Event.wait on a set event): then
    there is no second look, and no answer."""
    if ask() is None:
        return None
    if wait(after):
        return None
    return ask()
