"""The lifecycle's pure rules: use means a client's pull, a moving tag's old digests go, and a
host clock moved either way never hides a pull nor drops an image (model.log_cursor,
model.retention)."""

from mirror.model import log_cursor, retention
from mirror.model.retention import DAY, CachedImage, Policy
from mirror.services.lifecycle import parse_pull

S = log_cursor.SECOND
NOW = 1_800_000_000 * S
POLICY = Policy(keep_unused_days=30, max_bytes=0, keep_previous=1)
LINE = ('2026-11-24T03:28:39.928615767Z 127.0.0.1 - - [24/Nov/2026:03:28:39 +0000] '
        '"GET /v2/team/app/manifests/latest HTTP/1.1" 200 527 "" "{agent}"')


def read(saved_ns, now_ns, stamps):
    """One read of a log whose lines carry `stamps` (in the log's order): (new stamps, cursor)."""
    begun = log_cursor.start(saved_ns, now_ns)
    cursor, seen = begun.cursor_ns, []
    for stamp in stamps:
        if stamp >= begun.since_ns and log_cursor.is_new(stamp, begun):
            seen.append(stamp)
            cursor = log_cursor.advance(cursor, stamp, now_ns)
    return seen, cursor, begun.warning


def test_a_cursor_in_the_future_is_said_and_hides_no_pull():
    # The clock ran a day fast: the cursor saved then is ahead of every line written since.
    fast_cursor = NOW + DAY * S
    seen, cursor, warning = read(fast_cursor, NOW, [NOW + DAY * S - 5 * S, NOW - 60 * S, NOW - 1 * S])
    assert NOW - 60 * S in seen and NOW - 1 * S in seen          # the pulls after the correction
    assert warning and "ahead of the clock" in warning and "1.0 day(s)" in warning
    assert cursor <= NOW                                         # never saved ahead of the clock again
    # The next read, a minute on, sees a new pull and warns no more.
    seen, cursor2, warning = read(cursor, NOW + 60 * S, [NOW - 60 * S, NOW + 30 * S])
    assert seen == [NOW + 30 * S] and warning is None


def test_a_step_back_inside_one_read_hides_nothing():
    # A line stamped by the fast clock, then lines the corrected clock stamped (log order).
    saved = NOW - 3600 * S
    seen, cursor, warning = read(saved, NOW, [NOW + 7200 * S, NOW - 600 * S, NOW - 300 * S])
    assert seen == [NOW + 7200 * S, NOW - 600 * S, NOW - 300 * S] and warning is None
    assert cursor == NOW                                         # capped: the next read sees the next pull
    assert read(cursor, NOW + 10 * S, [NOW + 5 * S])[0] == [NOW + 5 * S]


def test_a_clock_moved_forward_hides_nothing_and_counts_once():
    saved = NOW
    later = NOW + 40 * DAY * S                                   # a slow clock corrected forward
    seen, cursor, warning = read(saved, later, [NOW - S, NOW + S, later - S])
    assert seen == [NOW + S, later - S] and warning is None and cursor == later - S
    assert read(cursor, later, [NOW + S, later - S])[0] == []    # nothing counted twice


def test_times_ahead_of_the_clock_never_drop_anything():
    now = 1_800_000_000.0
    last, retired, wrong = retention.sane_times(now + 5 * DAY, None, now)
    assert last == now and len(wrong) == 1
    last, retired, wrong = retention.sane_times(now - 40 * DAY, now + DAY, now)
    assert retired is None and last == now - 40 * DAY and wrong
    assert retention.sane_times(now - DAY, now - 2 * DAY, now) == (now - DAY, now - 2 * DAY, [])


def image(digest, last, pinned=False, retired=None):
    return CachedImage("dockerhub", "team/app", digest, (), (digest,), frozenset({digest, "l" + digest}),
                       last, pinned, retired)


def test_a_digest_left_behind_goes_unless_a_client_pulled_it_since():
    now = 1_800_000_000.0
    images = [image("d4", now - 60, pinned=True), image("d3", now - 3 * DAY, pinned=True),
              image("d2", now - 2 * DAY, retired=now - DAY),                # cached, never pulled since
              image("d1", now - 3600, retired=now - DAY)]                   # a client pulled it by digest
    sizes = {("dockerhub", b): 100 for i in images for b in i.blobs}
    plan = retention.plan(images, sizes, POLICY, now)
    assert [e.image.digest for e in plan.evictions] == ["d2"]
    assert "left behind" in plan.evictions[0].reason and plan.evictions[0].freed == 200
    assert retention.drop_time(images[3], POLICY) == now - 3600 + 30 * DAY
    assert retention.drop_time(images[2], POLICY) == now - DAY
    # A retirement recorded by a fast clock is not believed: nothing goes for it.
    ahead = image("d5", now - 2 * DAY, retired=now + DAY)
    last, retired, _ = retention.sane_times(ahead.last_pulled, ahead.retired, now)
    assert not retention.left_behind(image("d5", last, retired=retired))


def test_the_products_own_pulls_are_no_use():
    assert parse_pull(LINE.format(agent="docker/24.0.7 go/go1.20 os/linux")) is not None
    assert parse_pull(LINE.format(agent="containerd/1.7")) is not None
    assert parse_pull(LINE.format(agent="docker-mirror/1")) is None          # warm, refresh, archive
    assert parse_pull(LINE.format(agent="docker/24 UpstreamClient(docker-mirror/1)")) is None
    assert parse_pull(LINE.format(agent='x \\"docker-mirror/1\\" y')) is not None   # quoted, not ours


def read_saved(saved, now_ns, stamps):
    """One read through log_cursor.Reading: (stamps counted, what to save, warnings)."""
    reading = log_cursor.Reading.begin(saved[0], saved[1], now_ns, "request log")
    seen = [s for s in stamps if s >= reading.begun.since_ns and reading.take(s)]
    return seen, (reading.cursor_ns, reading.ahead()), reading.warnings("request log")


def test_a_pull_stamped_in_the_future_counts_once_and_warns_once():
    # A pull logged while the clock ran a day fast, then a pull the corrected clock stamped.
    fast, later = NOW + DAY * S, NOW - 60 * S
    seen, saved, warnings = read_saved((NOW - 3600 * S, []), NOW, [fast, later])
    assert seen == [fast, later] and len(warnings) == 1 and "stamped ahead" in warnings[0]
    assert saved[0] <= NOW                                  # the cursor is never saved ahead of the clock
    # Every read after (status, scrape, keeper), the log still holding both lines: nothing counts
    # again, so the image is not "used now" forever, and nothing is said again.
    for minutes in (1, 2, 60):
        seen, saved, warnings = read_saved(saved, NOW + minutes * 60 * S, [fast, later])
        assert seen == [] and warnings == []
    # A pull after them is still counted, and once the clock passes the fast stamp it is forgotten.
    seen, saved, _ = read_saved(saved, NOW + 2 * 3600 * S, [fast, later, NOW + 3600 * S])
    assert seen == [NOW + 3600 * S]
    seen, saved, _ = read_saved(saved, fast + 20 * S, [fast, later, NOW + 3600 * S, fast + 10 * S])
    assert seen == [fast + 10 * S] and saved == (fast + 10 * S, [])
