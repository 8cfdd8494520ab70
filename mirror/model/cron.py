"""systemd OnCalendar expressions as Kubernetes CronJob schedules (pure).

The refresh's schedule is a systemd calendar expression
(DOCKER_MIRROR_REFRESH_ON_CALENDAR), which the timer on a host reads as is;
a CronJob takes a five-field cron line. The forms Kconfig offers and people
write (daily, weekly, `*-*-* 02:00:00`, `Mon *-*-* 02:00`) have an exact
cron equivalent; anything else (ranges of dates, several times, seconds
other than 0) has none, and is refused rather than approximated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# systemd's shorthands (systemd.time(7)), as cron lines
_SHORTHANDS = {
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "weekly": "0 0 * * 1",       # systemd: Mon *-*-* 00:00:00
    "monthly": "0 0 1 * *",
}
_DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 0}
_DAY = r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*"
_EXPRESSION = re.compile(
    rf"^(?:(?P<days>{_DAY}(?:,{_DAY})*)\s+)?(?:\*-\*-\*\s+)?"
    r"(?P<hour>\*|\d{1,2}):(?P<minute>\d{1,2})(?::(?P<second>\d{1,2}))?$", re.I)

ALLOWED = ("with Kubernetes, one of daily, hourly, weekly, monthly, "
           "'*-*-* HH:MM[:00]', '*-*-* *:MM' or 'Mon,Thu *-*-* HH:MM' (a CronJob has "
           "no seconds, date ranges or several times)")


class NoCronEquivalent(ValueError):
    """The calendar expression has no exact five-field cron equivalent."""


@dataclass(frozen=True)
class Schedule:
    minute: int
    hour: int | None         # None: every hour
    days: str = "*"          # cron's day-of-week field
    day_of_month: str = "*"

    @property
    def cron(self) -> str:
        hour = "*" if self.hour is None else str(self.hour)
        return f"{self.minute} {hour} {self.day_of_month} * {self.days}"

    def later(self, minutes: int) -> "Schedule":
        """The same days, `minutes` later in the day; an hourly schedule moves
        by `minutes` modulo an hour, or half an hour when that is nothing.

        The collection runs after the refresh; a shift past midnight keeps
        the day, which only matters for weekly schedules and is said in the README.
        """
        if self.hour is None:
            return Schedule((self.minute + (minutes % 60 or 30)) % 60, None, self.days, self.day_of_month)
        total = (self.hour * 60 + self.minute + minutes) % (24 * 60)
        return Schedule(total % 60, total // 60, self.days, self.day_of_month)


def parse(expression: str) -> Schedule:
    """The Schedule of a systemd calendar expression; NoCronEquivalent otherwise."""
    text = " ".join(expression.split()).lower()
    if text in _SHORTHANDS:
        minute, hour, dom, _, days = _SHORTHANDS[text].split()
        return Schedule(int(minute), None if hour == "*" else int(hour), days, dom)
    found = _EXPRESSION.match(text)
    if not found or found["second"] not in (None, "0", "00"):
        raise NoCronEquivalent(expression)
    minute = int(found["minute"])
    hour = None if found["hour"] == "*" else int(found["hour"])
    if minute > 59 or (hour is not None and hour > 23):
        raise NoCronEquivalent(expression)
    days = "*"
    if found["days"]:
        numbers = []
        for day in found["days"].split(","):
            number = _DAYS.get(day[:3])
            if number is None or (len(day) > 3 and not _full_day(day)):
                raise NoCronEquivalent(expression)
            numbers.append(number)
        days = ",".join(str(n) for n in sorted(set(numbers)))
    return Schedule(minute, hour, days)


def _full_day(word: str) -> bool:
    return word in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
