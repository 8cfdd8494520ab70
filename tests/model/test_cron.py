"""systemd calendar expressions as CronJob schedules: exact, or refused."""

import pytest

from mirror.model import cron


@pytest.mark.parametrize("expression, line", [
    ("*-*-* 02:00:00", "0 2 * * *"),            # Kconfig's default
    ("*-*-* 2:05", "5 2 * * *"),
    ("  *-*-*   23:59:00 ", "59 23 * * *"),
    ("02:30", "30 2 * * *"),                    # systemd reads a bare time as every day
    ("*-*-* *:15:00", "15 * * * *"),
    ("daily", "0 0 * * *"),
    ("Daily", "0 0 * * *"),
    ("hourly", "0 * * * *"),
    ("weekly", "0 0 * * 1"),
    ("monthly", "0 0 1 * *"),
    ("Mon,Fri *-*-* 03:30", "30 3 * * 1,5"),
    ("sunday,Sat 04:00:00", "0 4 * * 0,6"),
])
def test_exact_equivalents(expression, line):
    assert cron.parse(expression).cron == line


@pytest.mark.parametrize("expression", [
    "*-*-* 02:00:30",       # seconds
    "Mon..Fri 02:00",       # a range of days
    "2026-01-01 02:00",     # a date
    "*-*-* 02,14:00",       # several hours
    "*-*-* 24:00",
    "*-*-* 02:60",
    "minutely",
    "Monx 02:00",
    "",
    "02:00; rm -rf /",
])
def test_no_exact_equivalent_is_refused(expression):
    with pytest.raises(cron.NoCronEquivalent):
        cron.parse(expression)


def test_later_keeps_the_days_and_wraps_the_clock():
    assert cron.parse("*-*-* 02:00").later(60).cron == "0 3 * * *"
    assert cron.parse("Mon 23:30").later(60).cron == "30 0 * * 1"
    assert cron.parse("monthly").later(90).cron == "30 1 1 * *"
    assert cron.parse("*-*-* *:15").later(60).cron == "45 * * * *"   # hourly: half an hour later
    assert cron.parse("*-*-* *:50").later(20).cron == "10 * * * *"
