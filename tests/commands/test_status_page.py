"""The status page in a real browser: headless Chromium (Debian's package) loads it from the
service on loopback; the test reads the rendered DOM and keeps a screenshot as an artifact
(tests/artifacts/, also what README.md shows)."""

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from mirror.services import lifecycle, observe
from mirror.config import settings as settings_mod
from support.configs import with_status_page, write_config
from support.mirrors import mirror_factory, serve_status_page
from support.upstream import UpstreamRegistry, free_port, make_layer, push_image

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def chromium(tmp_path, url, *args, timeout=90) -> str:
    profile = tmp_path / f"chromium-profile-{free_port()}"    # a fresh profile every run
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, url],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Cells(HTMLParser):
    """The text of each <td> by class, and elements by id, from the DOM Chromium dumped."""

    def __init__(self):
        super().__init__()
        self.rows, self.ids, self._cls, self._row = [], set(), None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "tr" and attrs.get("class") == "image":
            self._row = {}
            self.rows.append(self._row)
        if tag == "td" and self._row is not None:
            self._cls = (attrs.get("class") or "").split()[-1:] or [""]

    def handle_data(self, data):
        if self._cls is not None and self._row is not None:
            key = self._cls[0]
            self._row[key] = (self._row.get(key, "") + data).strip()

    def handle_endtag(self, tag):
        if tag == "td":
            self._cls = None
        if tag == "tr":
            self._row = None


@pytest.fixture
def hub(tmp_path):
    with UpstreamRegistry(tmp_path / "hub") as registry:
        yield registry


def test_the_page_lists_images_sizes_and_pins_in_a_real_browser(tmp_path, hub, docker_client, registry_image):
    push_image(hub.url, "minio/minio", "RELEASE.2024", layers=[make_layer(600_000, "m")])
    push_image(hub.url, "coreos/etcd", "v3.5", layers=[make_layer(250_000, "e")])
    with mirror_factory(docker_client, lambda name: tmp_path / name) as make:
        m = make(hub.url)
        settings = with_status_page(m.settings)
        observe.sample(settings, docker_client)
        for _ in range(2):      # cold, then from the cache: the plot gets a hit ratio to draw
            for ref in ("minio/minio:RELEASE.2024", "coreos/etcd:v3.5"):
                image = docker_client.images.pull(f"127.0.0.1:{m.port}/{ref}")
                docker_client.images.remove(image.id, force=True)
            observe.sample(settings, docker_client)
        # minio is an image to keep warm: pinned at the digest it has now.
        digest = requests.get(f"{m.url()}/v2/minio/minio/manifests/RELEASE.2024", timeout=10, headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json"}).headers["Docker-Content-Digest"]
        from mirror.host import usage
        usage.write_pins(m.root, {"docker.io/minio/minio:RELEASE.2024": {
            "upstream": "dockerhub", "repository": "minio/minio", "digests": [digest]}})
        observe.sample(settings, docker_client)
        server = serve_status_page(settings)
        try:
            url = f"http://127.0.0.1:{settings.observe.port}/"
            dom = chromium(tmp_path, url, "--dump-dom")
            cells = Cells()
            cells.feed(dom)
            rows = {r["ref"]: r for r in cells.rows}
            assert set(rows) == {"docker.io/minio/minio:RELEASE.2024", "docker.io/coreos/etcd:v3.5"}
            assert rows["docker.io/minio/minio:RELEASE.2024"]["pinned"] == "pinned"
            assert rows["docker.io/coreos/etcd:v3.5"].get("pinned", "") == ""
            sizes = lifecycle.image_rows(settings, docker_client)["dockerhub"]
            from mirror import render
            for row in sizes:
                ref = f"docker.io/{row['repository']}:{row['tags'][0]}"
                assert rows[ref]["size"] == render.human_size(row["bytes"]) and row["bytes"] > 0
            assert "disk-plot" in cells.ids and "no-mirror" not in cells.ids
            assert f"docker pull 127.0.0.1:{m.port}/minio/minio:RELEASE.2024" in dom
            ARTIFACTS.mkdir(exist_ok=True)
            shot = tmp_path / "status-page.png"
            chromium(tmp_path, url, f"--screenshot={shot}", "--window-size=1100,800")
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            shutil.copy(shot, ARTIFACTS / "status-page.png")
        finally:
            server.shutdown()
            server.server_close()


def test_a_page_with_no_mirror_running_says_so(tmp_path):
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                          DOCKER_MIRROR_PORT=free_port(), DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=f"http://127.0.0.1:{free_port()}")
    settings = with_status_page(settings_mod.load(config))
    server = serve_status_page(settings)
    try:
        dom = chromium(tmp_path, f"http://127.0.0.1:{settings.observe.port}/", "--dump-dom")
        cells = Cells()
        cells.feed(dom)
        assert "no-mirror" in cells.ids and "No mirror is running" in dom
        assert "no-images" in cells.ids and cells.rows == []
        # the keeper and refresh rows a browser shows; no TLS section with TLS off
        assert {"keeper", "last-refresh", "next-refresh"} <= cells.ids and "tls" not in cells.ids
        assert requests.get(f"http://127.0.0.1:{settings.observe.port}/metrics", timeout=10).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
