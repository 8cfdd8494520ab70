"""Where to read a request log from, when the host clock may have jumped (pure).

The readers of the mirrors' request logs (last use in services.lifecycle)
keep a cursor: the Docker timestamp of the last line read, and skip lines
at or before it. Docker stamps lines with the host clock. A clock that ran
fast and was set back leaves a cursor ahead of every line written since:
those pulls would be hidden, an image in use would look unused and go.

- `start()`: a saved cursor ahead of now (beyond `SLACK_NS`) is detected;
  the whole log is then read again. Reading a pull twice is harmless for
  last use (the latest time wins), hiding one is not.
- `advance()`: the cursor never moves ahead of now, so a line stamped in
  the future (written while the clock was fast) cannot hide the lines the
  corrected clock stamps after it; and within one read, lines are compared
  with the cursor the read started from, not with the last line's stamp, so
  a step back inside the log hides nothing either.
"""

from __future__ import annotations

from dataclasses import dataclass

SECOND = 10**9
# Docker's stamps and our reading of the clock come from one host clock; more than this
# ahead is a clock that was set back, not the time between writing a line and reading it.
SLACK_NS = 120 * SECOND


@dataclass(frozen=True)
class Start:
    since_ns: int               # ask the log from here (0: all of it)
    counted_through_ns: int     # lines stamped at or before this were read already (-1: none)
    cursor_ns: int              # the cursor the read advances from (`advance`)
    warning: str | None = None


def _span(ns: int) -> str:
    seconds = ns / SECOND
    for unit, size in (("day(s)", 86400), ("hour(s)", 3600), ("minute(s)", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def start(saved_ns: int, now_ns: int, what: str = "request log") -> Start:
    """Where to read from, given the saved cursor and the clock now (both Docker time, ns)."""
    if saved_ns > now_ns + SLACK_NS:
        return Start(0, -1, 0, f"warning: the {what}'s cursor is {_span(saved_ns - now_ns)} ahead of the "
                            "clock (the host clock was fast and was set back): the whole log is read "
                            "again, so that no pull since is missed")
    saved_ns = max(saved_ns, 0)
    return Start(saved_ns, saved_ns, saved_ns)


def is_new(stamp_ns: int, begun: Start) -> bool:
    """True for a line the read that `begun` started has not counted before."""
    return stamp_ns > begun.counted_through_ns


def advance(cursor_ns: int, stamp_ns: int, now_ns: int) -> int:
    """The cursor after a line stamped `stamp_ns`: never back, never ahead of now."""
    return max(cursor_ns, min(stamp_ns, now_ns))
