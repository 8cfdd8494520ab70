"""Pure figures of the traffic metrics: hits, misses, bytes, headers, history, plots."""

import pytest

from mirror.services import lifecycle
from mirror.model import traffic

LINE = ('2026-11-24T04:41:00.123456789Z 127.0.0.1 - - [24/Nov/2026:04:41:00 +0000] '
        '"GET /v2/minio/minio/blobs/sha256:' + "a" * 64 + ' HTTP/1.1" 200 1234 "" "python-requests/2.31"')


def test_a_blob_line_gives_time_repository_digest_and_bytes():
    assert lifecycle.parse_blob_get(LINE) == (1795495260123456789, "minio/minio", "sha256:" + "a" * 64, 1234)
    assert lifecycle.parse_blob_get(LINE.replace('" 200 ', '" 404 ')) is None
    assert lifecycle.parse_blob_get(LINE.replace('"GET', '"HEAD')) is None
    assert lifecycle.parse_blob_get(LINE.replace("/blobs/", "/manifests/")) is None


def test_first_serve_is_a_miss_then_hits():
    t = traffic.Traffic(sampled=100.0)
    t.count("sha256:x", 10, (10, 150.0), last_sample=100.0)
    t.count("sha256:x", 10, (10, 150.0), last_sample=100.0)
    assert (t.hits, t.misses, t.served_bytes, t.upstream_bytes, t.saved_bytes) == (1, 1, 20, 10, 10)


def test_a_blob_stored_before_the_last_sample_without_a_request_is_a_hit():
    t = traffic.Traffic()
    t.count("sha256:restored", 50, (50, 10.0), last_sample=100.0)
    assert (t.hits, t.misses, t.upstream_bytes) == (1, 0, 0)


def test_totals_round_trip_through_json():
    t = traffic.Traffic(cursor_ns=5, sampled=1.5, hits=2, misses=1, served_bytes=30, upstream_bytes=10,
                        seen={"sha256:x": 10})
    assert traffic.Traffic.from_json(t.to_json()) == t
    assert traffic.Traffic.from_json({}) == traffic.Traffic()


@pytest.mark.parametrize("headers, remaining, limit, window", [
    ({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "76;w=21600"}, 76, 100, 21600),
    ({"RateLimit-Limit": "200", "RateLimit-Remaining": "0"}, 0, 200, None),
    ({}, None, None, None),
])
def test_headroom_headers(headers, remaining, limit, window):
    found = traffic.parse_headroom(headers)
    assert (found.remaining, found.limit, found.window_seconds) == (remaining, limit, window)


def test_hit_ratio_and_history():
    assert traffic.hit_ratio(0, 0) is None
    assert traffic.hit_ratio(3, 1) == 0.75
    history = []
    for n in range(5):
        history = traffic.add_sample(history, {"t": n, "hit_ratio": n / 4}, limit=3)
    assert [s["t"] for s in history] == [2, 3, 4]
    assert traffic.series(history + [{"t": 5, "hit_ratio": None}], "hit_ratio") == [(2, .5), (3, .75), (4, 1.0)]


def test_polyline_scales_into_the_box():
    assert traffic.polyline([(0, 0)], 100, 10) == ""
    assert traffic.polyline([(0, 0), (10, 5), (20, 10)], 100, 10) == "0.0,10.0 50.0,5.0 100.0,0.0"
    assert traffic.polyline([(0, 0), (10, 0.5)], 100, 10, top=1.0) == "0.0,10.0 100.0,5.0"
