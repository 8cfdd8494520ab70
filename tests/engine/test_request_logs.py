"""Merging the replicas' request logs: time order, whatever the length of Docker's fractions."""

from mirror.engine.request_logs import _stamp


def test_fractions_of_any_length_sort_in_time_order():
    lines = [b"2026-11-24T06:00:05.1Z b", b"2026-11-24T06:00:05.12Z a", b"2026-11-24T06:00:05Z c",
             b"2026-11-24T06:00:04.999999999Z d"]
    assert [line.split()[1] for line in sorted(lines, key=_stamp)] == [b"d", b"c", b"b", b"a"]
