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
- A line stamped ahead of the cursor's cap (written while the clock was
  fast) would then be new again at every read, and count as "used now"
  until the clock catches up: the stamps counted above the cursor are saved
  with it (`Reading.ahead_ns`) and not counted again; only their first read
  warns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SECOND = 10**9
# Docker's stamps and our reading of the clock come from one host clock; more than this
# ahead is a clock that was set back, not the time between writing a line and reading it.
SLACK_NS = 120 * SECOND
# Stamps counted above the cursor kept at most (the newest): each is a line written while the
# clock was fast; past this many, the oldest may count once more, which is harmless.
MAX_AHEAD = 1000


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


@dataclass
class Reading:
    """One read of a log, from the saved cursor and the stamps counted above it.

    `take(stamp)` for each line in the log's order: True for a line to count
    (then remembered); afterwards `cursor_ns`, `ahead()` are what to save, and
    `warnings(what)` what to say (once per line stamped ahead of the clock)."""
    begun: Start
    now_ns: int
    cursor_ns: int
    counted_ahead: frozenset
    taken_ahead: set = field(default_factory=set)
    stamped_ahead: int = 0     # lines counted now that were stamped ahead of the clock

    @classmethod
    def begin(cls, saved_ns: int, ahead_ns, now_ns: int, what: str = "request log") -> "Reading":
        begun = start(saved_ns, now_ns, what)
        return cls(begun, now_ns, begun.cursor_ns, frozenset(ahead_ns))

    def take(self, stamp_ns: int) -> bool:
        if not is_new(stamp_ns, self.begun) or stamp_ns in self.counted_ahead:
            return False
        self.cursor_ns = advance(self.cursor_ns, stamp_ns, self.now_ns)
        if stamp_ns > self.now_ns:
            self.taken_ahead.add(stamp_ns)
        if stamp_ns > self.now_ns + SLACK_NS:
            self.stamped_ahead += 1
        return True

    def ahead(self) -> list[int]:
        """The stamps counted above the cursor, to save with it (those it passed are done)."""
        return sorted(s for s in self.counted_ahead | self.taken_ahead if s > self.cursor_ns)[-MAX_AHEAD:]

    def warnings(self, what: str = "request log") -> list[str]:
        found = [self.begun.warning] if self.begun.warning else []
        if self.stamped_ahead:
            found.append(f"warning: {self.stamped_ahead} pull(s) in the {what} are stamped ahead of the "
                         "clock (the host clock was fast): they count as pulled now, once")
        return found
