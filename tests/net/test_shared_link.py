"""The shared link the fetch-once tests and bench/ measure with (support/link.py), on a real registry.

What the measurements rely on: every connection draws on one budget (a cap
per connection would let a second fetch through for free), and the link
counts each request and its answer exactly.
"""

import hashlib
import threading
import time

import requests

from support.link import SharedLink
from support.upstream import make_layer, push_image

RATE = 4_000_000


def test_connections_share_one_budget_and_every_request_is_counted(upstream):
    layer = make_layer(1_000_000, "shared-link")
    push_image(upstream.url, "library/link", "1", layers=[layer])
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    with SharedLink(("127.0.0.1", upstream.port), rate_bytes=RATE) as link:
        link.reset()
        bodies = []

        def fetch():
            bodies.append(requests.get(f"{link.url}/v2/library/link/blobs/{digest}", timeout=30).content)

        clients = [threading.Thread(target=fetch) for _ in range(2)]
        start = time.monotonic()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        elapsed = time.monotonic() - start
        counts = link.counts()

        assert bodies == [layer, layer]
        # one budget: two copies take twice as long as one would at the rate
        assert elapsed >= 2 * len(layer) / RATE * 0.95, f"{elapsed:.2f} s for 2 copies at {RATE} B/s"
        gets = counts.blob_gets()[digest]
        assert [(r.status, r.body_bytes) for r in gets] == [(200, len(layer))] * 2
        assert counts.blob_body_bytes == 2 * len(layer)
        assert counts.bytes_down == counts.blob_body_bytes + sum(r.header_bytes for r in gets) == \
            counts.blob_body_bytes + counts.overhead
        assert counts.connections == 2 and counts.bytes_up > 0
        link.reset()
        assert link.counts().bytes_down == 0 and link.counts().requests == ()


def test_hold_keeps_an_answer_back_until_release(upstream):
    layer = make_layer(200_000, "held")
    push_image(upstream.url, "library/held", "1", layers=[layer])
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    with SharedLink(("127.0.0.1", upstream.port)) as link:
        link.hold(digest)
        got = []
        client = threading.Thread(target=lambda: got.append(
            requests.get(f"{link.url}/v2/library/held/blobs/{digest}", timeout=30).content))
        client.start()
        assert requests.head(f"{link.url}/v2/library/held/blobs/{digest}", timeout=10).status_code == 200
        deadline = time.monotonic() + 10
        while not link.counts().blob_gets().get(digest) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        [held] = link.counts().blob_gets()[digest]
        assert held.bytes_down == 0 and not got   # asked, and nothing of the answer let through
        link.release()
        client.join(timeout=10)
        assert got == [layer]
