"""Metrics on real components: a real mirror pulled through in a known sequence of hits and
misses, the service's /metrics scraped by a real Prometheus (Debian's package, on loopback,
with a config of its own), and PromQL through its HTTP API."""

import dataclasses
import json
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from mirror.services import observe, observe_serve
from support.configs import with_status_page
from mirror.host.layout import Layout
from mirror.host.storage import StorageTree
from mirror.model import manifests
from support.upstream import free_port, make_layer, push_image

PROMETHEUS = "/usr/bin/prometheus"
DASHBOARD = Path(__file__).resolve().parents[2] / "grafana" / "docker-mirror-dashboard.json"


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def pull_blobs(m, repository, tag) -> int:
    """Pull the image over the registry API (manifest, config, layers); bytes of blobs received."""
    base = m.url()
    answer = requests.get(f"{base}/v2/{repository}/manifests/{tag}", timeout=30,
                          headers={"Accept": ", ".join(manifests.MANIFEST_TYPES)})
    answer.raise_for_status()
    body = answer.json()
    digests = [body["config"]["digest"], *(layer["digest"] for layer in body["layers"])]
    received = 0
    for digest in digests:
        blob = requests.get(f"{base}/v2/{repository}/blobs/{digest}", timeout=30)
        blob.raise_for_status()
        received += len(blob.content)
    return received


def stored_size(tree: StorageTree, digest: str, timeout: float = 15.0) -> int:
    """The size of a blob the mirror stores: a proxy commits it in the background,
    after the client has had the last byte."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return tree.blob_data(digest).stat().st_size
        except FileNotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def sample_until(settings, client, blobs: int, timeout: float = 15.0):
    """Sample until the request log shows `blobs` blobs served (the log is written just after)."""
    deadline = time.monotonic() + timeout
    while True:
        counted = observe.sample(settings, client)["dockerhub"]
        if counted.hits + counted.misses >= blobs or time.monotonic() > deadline:
            return counted
        time.sleep(0.2)


@pytest.fixture
def service(make_mirror, hub, docker_client):
    """A mirror with a cached-nothing start, and the status service on a free loopback port."""
    m = make_mirror(hub.url)
    settings = with_status_page(m.settings)
    observe.sample(settings, docker_client)          # counting starts: nothing cached yet
    server = observe_serve.make_server(settings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield m, settings, server
    server.shutdown()
    server.server_close()


def test_counts_hits_misses_and_bytes_from_the_request_log(service, hub, docker_client):
    m, settings, _ = service
    push_image(hub.url, "minio/minio", "latest", layers=[make_layer(300_000, "a"), make_layer(200_000, "b")])
    cold = pull_blobs(m, "minio/minio", "latest")
    counted = sample_until(settings, docker_client, 3)
    assert (counted.hits, counted.misses) == (0, 3)
    assert counted.served_bytes == cold
    assert counted.upstream_bytes == sum(stored_size(StorageTree(m.storage()), d) for d in counted.seen)
    warm = pull_blobs(m, "minio/minio", "latest")
    counted = sample_until(settings, docker_client, 6)
    assert (counted.hits, counted.misses) == (3, 3)
    assert counted.served_bytes == cold + warm
    assert counted.saved_bytes == warm
    # Counted once: a sample with nothing new adds nothing.
    again = observe.sample(settings, docker_client)["dockerhub"]
    assert (again.hits, again.misses, again.served_bytes) == (3, 3, cold + warm)


def test_a_real_prometheus_scrapes_hit_ratio_and_bytes_saved(service, hub, docker_client, tmp_path):
    m, settings, _ = service
    push_image(hub.url, "vllm/vllm-openai", "v1", layers=[make_layer(400_000, "x"), make_layer(100_000, "y")])
    pulled = sum(pull_blobs(m, "vllm/vllm-openai", "v1") for _ in range(3))    # 3 misses, 6 hits
    counted = sample_until(settings, docker_client, 9)
    assert (counted.hits, counted.misses) == (6, 3)

    # A refresh record as the refresh writes it: its time, duration and result become gauges.
    Layout.of(settings).last_refresh.parent.mkdir(parents=True, exist_ok=True)
    Layout.of(settings).last_refresh.write_text(json.dumps({
        "started": "2026-11-24T02:00:00+00:00", "finished": "2026-11-24T02:00:12+00:00", "result": "ok",
        "log": "update-20261124-020000.log", "failed": []}))
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: docker-mirror\n    static_configs: [{{targets: ['127.0.0.1:{settings.observe.port}']}}]\n")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        api = f"http://127.0.0.1:{prom_port}/api/v1/query"

        def query(promql):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    result = requests.get(api, params={"query": promql}, timeout=5).json()["data"]["result"]
                except (requests.RequestException, KeyError, ValueError):
                    result = []
                if result:
                    return float(result[0]["value"][1])
                time.sleep(0.5)
            raise AssertionError(f"Prometheus has no value for {promql}")

        ratio = query('sum(docker_mirror_blob_requests_total{result="hit"}) / '
                      'sum(docker_mirror_blob_requests_total)')
        assert ratio == pytest.approx(6 / 9)
        upstream = query('docker_mirror_upstream_bytes_total{upstream="dockerhub"}')
        assert upstream == counted.upstream_bytes
        assert query('docker_mirror_saved_bytes{upstream="dockerhub"}') == pulled - upstream
        # The registry's own request metrics, re-exported under the same target.
        assert query('sum(registry_http_requests_total{upstream="dockerhub"})') > 0
        assert query('docker_mirror_up{upstream="dockerhub"}') == 1
        assert query('docker_mirror_images{upstream="dockerhub"}') == 1
        assert query('docker_mirror_last_refresh_duration_seconds') == 12

        # The Grafana dashboard: every expression is valid PromQL, every metric it names is served.
        exposed = requests.get(f"http://127.0.0.1:{settings.observe.port}/metrics", timeout=10).text
        for expr in dashboard_expressions():
            answer = requests.get(api, params={"query": expr}, timeout=10).json()
            assert answer["status"] == "success", (expr, answer)
            for name in re.findall(r"\b((?:docker_mirror|registry)_[a-z_]+)", expr):
                # Docker Hub's headers are absent from this upstream, so its gauges are too.
                assert name in exposed or "ratelimit" in name, (name, expr)
    finally:
        prom.terminate()
        prom.wait(timeout=20)


def test_textfile_is_written_for_node_exporter(service, docker_client, tmp_path):
    _, settings, server = service
    settings = dataclasses.replace(settings, observe=dataclasses.replace(
        settings.observe, textfile_dir=str(tmp_path / "textfile")))
    path = observe.write_textfile(settings, server.service.collectors)
    text = path.read_text()
    assert path.name == "docker_mirror.prom"
    assert 'docker_mirror_up{upstream="dockerhub"} 1.0' in text
    assert "# TYPE docker_mirror_blob_requests_total counter" in text


def test_collections_and_evictions_are_counted(make_mirror, hub, docker_client):
    from mirror.services import lifecycle
    from mirror.model.retention import ShiftedClock
    push_image(hub.url, "library/cold", "1", layers=[make_layer(200_000, "cold")])
    m = make_mirror(hub.url, DOCKER_MIRROR_KEEP_UNUSED_DAYS=1)
    pull_blobs(m, "library/cold", "1")          # pulled once, ad hoc: unpinned
    clock = ShiftedClock()
    deadline = time.monotonic() + 15    # the pull's log line is read (its time is the last use)
    while not lifecycle.ingest(m.settings, docker_client, clock).get("dockerhub") and time.monotonic() < deadline:
        time.sleep(0.2)
    clock.advance(3)
    done = lifecycle.collect(m.settings, docker_client, clock=clock, log=lambda _: None)
    assert [e.image.repository for e in done.plan.evictions] == ["library/cold"]
    freed = done.disk_before["dockerhub"] - done.disk_after["dockerhub"]
    assert freed > 200_000
    text = observe.exposition(observe.registry(m.settings, lambda: docker_client,
                                               observe.Probes(m.settings, ttl=60))).decode()
    assert "docker_mirror_collections_total 1.0" in text
    assert "docker_mirror_evicted_images_total 1.0" in text
    assert f"docker_mirror_collected_bytes_total {float(freed)}" in text


def test_what_was_served_before_counting_started_is_not_counted(make_mirror, hub, docker_client):
    push_image(hub.url, "library/early", "1", layers=[make_layer(100_000, "early")])
    m = make_mirror(hub.url)
    pull_blobs(m, "library/early", "1")
    time.sleep(1.5)             # the request log has the lines before counting starts
    first = observe.sample(m.settings, docker_client)["dockerhub"]
    assert (first.hits, first.misses, first.served_bytes) == (0, 0, 0) and first.cursor_ns > 0
    assert len(first.seen) == 3   # manifest, config and layer, held already: hits from now on
    pull_blobs(m, "library/early", "1")
    assert (sample_until(m.settings, docker_client, 2).hits, first.misses) == (2, 0)
