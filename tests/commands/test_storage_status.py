"""The storage tree reader and the status / check_docker_mirror.sh reports,
against real distribution registries (Debian's binary, run as a process) whose
storage directories are the mirror's per-upstream storage directories."""

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from mirror import render
from mirror.services import status
from mirror.config import settings
from mirror.model.settings import Settings
from mirror.engine import containers
from mirror.host import layout as L
from mirror.model.modes import OFFLINE
from mirror.host import storage, systemd
from mirror.host.files import atomic_write
from mirror.host.storage import CachedTag
from mirror.model import images
from mirror.net import probes
from support import hosts_file
from support.configs import write_config
from support.upstream import REGISTRY_BINARY, UpstreamRegistry, free_port, make_layer, push_image

from mirror.config.kconfig import ROOT  # noqa: E402
CHECK_SCRIPT = ROOT / "scripts" / "check_docker_mirror.sh"

MINIO = ("minio/minio", "RELEASE.2023-03-20T20-16-18Z")
NGINX = ("library/nginx", "1")
NGINX_OTHER = ("library/nginx", "1.25-alpine")
ROUTER = ("vllm-project/production-stack/router", "latest")
ROUTER_PARENT = ("vllm-project/production-stack", "v1")  # a repository that also holds one


def registry_in(storage_dir: Path, root: Path) -> UpstreamRegistry:
    """A started plain registry whose storage directory is `storage_dir`."""
    registry = UpstreamRegistry(root)
    registry.storage = storage_dir
    registry.root.mkdir(parents=True, exist_ok=True)
    return registry.start()


def blob_data(storage_dir: Path, digest: str) -> Path:
    hex_ = digest.split(":", 1)[1]
    return storage_dir / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A running registry holding nested names, two tags of one repository and
    a multi-platform index; yields (registry, {(repo, tag): digest})."""
    root = tmp_path_factory.mktemp("populated")
    registry = registry_in(root / "storage", root / "registry")
    pushed = {}
    for repo, tag in (MINIO, NGINX, ROUTER, ROUTER_PARENT):
        pushed[repo, tag] = push_image(registry.url, repo, tag)
    pushed[NGINX_OTHER] = push_image(registry.url, *NGINX_OTHER,
                                     platforms=["linux/amd64", "linux/arm64"])
    yield registry, pushed
    registry.stop()


# ---------------------------------------------------------------- storage

def test_cached_tags_lists_exactly_the_pushed_tags_with_their_digests(populated):
    registry, pushed = populated
    expected = sorted(CachedTag(repo, tag, digest) for (repo, tag), digest in pushed.items())
    assert storage.cached_tags(registry.storage) == expected
    # the index of the multi-platform tag, not one of its per-platform manifests
    assert CachedTag(*NGINX_OTHER, pushed[NGINX_OTHER]) in expected


def test_cached_tags_of_an_absent_or_empty_tree_is_empty(tmp_path):
    assert storage.cached_tags(tmp_path / "absent") == []
    (tmp_path / "docker/registry/v2/repositories").mkdir(parents=True)
    assert storage.cached_tags(tmp_path) == []


def test_a_tag_whose_manifest_blob_is_gone_is_not_cached(tmp_path):
    registry = registry_in(tmp_path / "storage", tmp_path / "registry")
    try:
        kept = push_image(registry.url, *MINIO)
        gone = push_image(registry.url, *NGINX)
    finally:
        registry.stop()
    blob_data(registry.storage, gone).unlink()  # as when expired content is deleted

    assert storage.cached_tags(registry.storage) == [CachedTag(*MINIO, kept)]
    assert not storage.has_image(registry.storage, images.parse("nginx:1"))
    assert not storage.has_image(registry.storage, images.parse(f"nginx@{gone}"))
    assert storage.has_image(registry.storage, images.parse(f"minio/minio:{MINIO[1]}"))


def test_a_manifest_deleted_through_the_api_is_not_cached(tmp_path):
    # distribution drops the revision link (and tags) but keeps the blob data
    # until garbage collection: the blob alone does not make a cached image.
    with registry_in(tmp_path / "storage", tmp_path / "registry") as registry:
        digest = push_image(registry.url, *MINIO)
        other = push_image(registry.url, MINIO[0], "other")
        r = requests.delete(f"{registry.url}/v2/{MINIO[0]}/manifests/{digest}", timeout=10)
        assert r.status_code == 202, r.text
    assert blob_data(registry.storage, digest).is_file()
    assert not storage.has_image(registry.storage, images.parse(f"minio/minio@{digest}"))
    assert not storage.has_image(registry.storage, images.parse(f"minio/minio:{MINIO[1]}"))
    assert storage.cached_tags(registry.storage) == [CachedTag(MINIO[0], "other", other)]


def test_has_image_by_tag_and_by_digest(populated):
    registry, pushed = populated
    data = registry.storage
    minio_digest = pushed[MINIO]
    yes = [f"minio/minio:{MINIO[1]}", f"docker.io/minio/minio:{MINIO[1]}",
           f"minio/minio@{minio_digest}", f"minio/minio:whatever@{minio_digest}",
           "nginx:1", "index.docker.io/library/nginx:1", "nginx:1.25-alpine",
           f"nginx@{pushed[NGINX_OTHER]}", "ghcr.io/vllm-project/production-stack/router",
           "vllm-project/production-stack:v1"]
    no = ["minio/minio", "minio/minio:latest", "nginx:2", "vllm-project/production-stack",
          f"minio/minio@sha256:{'0' * 64}", f"nginx@{minio_digest}",  # not this repository's
          "vllm-project/production-stack/router/extra:latest", "redis:7"]
    for ref in yes:
        assert storage.has_image(data, images.parse(ref)), ref
    for ref in no:
        assert not storage.has_image(data, images.parse(ref)), ref


def test_disk_usage_counts_allocated_blocks_like_du(tmp_path):
    layers = [make_layer(400_000, "a"), make_layer(300_000, "b")]
    with registry_in(tmp_path / "storage", tmp_path / "registry") as registry:
        push_image(registry.url, "big/image", "1", layers=layers)
    # a hard link (as a deduplicating copy makes) is counted once, as du does
    big = max(registry.storage.rglob("data"), key=lambda p: p.stat().st_size)
    os.link(big, registry.storage / "hard-link")
    used = storage.disk_usage(registry.storage)
    assert used > sum(len(layer) for layer in layers)
    du = subprocess.run(["du", "-s", "-B1", str(registry.storage)], capture_output=True,
                        text=True, check=True).stdout.split()[0]
    assert used == int(du)
    assert storage.disk_usage(tmp_path / "absent") == 0
    link = tmp_path / "link"
    link.symlink_to(registry.storage)
    assert storage.disk_usage(link) == used


# ---------------------------------------------------------------- status

def mirror_settings(tmp_path: Path, port: int, **overrides) -> Settings:
    """Settings whose Docker Hub mirror listens on `port` and stores in tmp_path/storage/dockerhub."""
    path = write_config(tmp_path / ".config", DOCKER_MIRROR_PORT=port,
                        DOCKER_MIRROR_PATH=str(tmp_path / "mirror"),
                        DOCKER_MIRROR_STORAGE_PATH=str(tmp_path / "storage"), **overrides)
    return settings.load(path)


@pytest.fixture
def hub(tmp_path):
    """A running registry standing for the Docker Hub mirror, holding minio and nginx."""
    registry = registry_in(tmp_path / "storage" / "dockerhub", tmp_path / "hub")
    registry.pushed = {MINIO: push_image(registry.url, *MINIO), NGINX: push_image(registry.url, *NGINX)}
    yield registry
    registry.stop()


def test_gather_reports_an_answering_mirror_and_its_cache(tmp_path, hub):
    cfg = mirror_settings(tmp_path, hub.port)
    doc = status.gather(cfg, client=None)
    json.dumps(doc)  # JSON-ready
    assert doc["config"] == cfg.config_path and doc["path"] == str(tmp_path / "mirror")
    assert doc["enabled"] is cfg.enabled
    [up] = doc["upstreams"]
    assert up["key"] == "dockerhub" and up["registry"] == "docker.io"
    assert up["address"] == f"127.0.0.1:{hub.port}" and up["url"] == f"http://127.0.0.1:{hub.port}"
    assert up["container"] == {"name": "docker-mirror-dockerhub", "state": "unknown", "mode": None}
    assert up["answering"] is True
    assert up["cached"] == [
        {"repository": "library/nginx", "tag": "1", "digest": hub.pushed[NGINX]},
        {"repository": "minio/minio", "tag": MINIO[1], "digest": hub.pushed[MINIO]},
    ]
    assert (up["repositories"], up["tags"]) == (2, 2)
    assert up["disk_bytes"] == storage.disk_usage(hub.storage) > 0
    assert status.exit_code(doc) == 0

    text = status.format_text(doc)
    assert "answering:  yes" in text
    assert f"minio/minio:{MINIO[1]}  {hub.pushed[MINIO][:19]}" in text
    assert f"library/nginx:1  {hub.pushed[NGINX][:19]}" in text
    assert "2 repositories / 2 tags" in text
    assert f"disk used:  {render.human_size(up['disk_bytes'])} in {hub.storage}" in text

    hub.stop()
    down = status.gather(cfg, client=None)
    assert down["upstreams"][0]["answering"] is False
    assert down["upstreams"][0]["cached"] == up["cached"]  # the cache is still on disk
    assert status.exit_code(down) == 1
    assert "not answering" in status.format_text(down)


def test_a_mirror_bound_to_all_interfaces_is_probed_on_loopback(tmp_path, hub):
    doc = status.gather(mirror_settings(tmp_path, hub.port, DOCKER_MIRROR_BIND_ADDRESS="0.0.0.0"),
                        client=None)
    [up] = doc["upstreams"]
    assert up["address"] == f"0.0.0.0:{hub.port}"
    assert up["url"] == f"http://127.0.0.1:{hub.port}"
    assert up["answering"] is True


def test_exit_code_needs_every_upstream_answering(tmp_path, hub):
    cfg = mirror_settings(tmp_path, hub.port, DOCKER_MIRROR_GHCR=True,
                          DOCKER_MIRROR_GHCR_REMOTE_URL="https://ghcr.io",
                          DOCKER_MIRROR_GHCR_PORT=free_port())
    doc = status.gather(cfg, client=None)
    assert [(u["key"], u["answering"]) for u in doc["upstreams"]] == [
        ("dockerhub", True), ("ghcr", False)]
    assert status.exit_code(doc) == 1
    assert "no (not answering)" in status.format_text(doc)


def test_a_disabled_mirror_is_not_an_error(tmp_path):
    doc = status.gather(mirror_settings(tmp_path, free_port(), ENABLE_DOCKER_MIRROR=False), client=None)
    assert doc["enabled"] is False
    assert status.exit_code(doc) == 0


def test_no_secret_reaches_the_status(tmp_path, hub):
    secrets = ["hub-password-s3cret", "url-password-s3cret"]
    cfg = mirror_settings(tmp_path, hub.port, DOCKER_MIRROR_DOCKERHUB_USERNAME="someone",
                          DOCKER_MIRROR_DOCKERHUB_PASSWORD=secrets[0],
                          DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=f"https://bob:{secrets[1]}@hub.example.com")
    assert cfg.upstreams[0].password == secrets[0]  # the secrets are really configured
    secret_file = L.Layout.of(cfg).http_secret
    atomic_write(secret_file, "http-secret-s3cret", mode=0o600)
    secrets.append("http-secret-s3cret")

    doc = status.gather(cfg, client=None)
    assert doc["upstreams"][0]["remote_url"] == "https://hub.example.com"
    for text in (json.dumps(doc), status.format_text(doc)):
        for secret in secrets:
            assert secret not in text


def test_azure_storage_keeps_its_key_out_and_a_silent_store_fails_status(tmp_path):
    # The store's name resolves to loopback (a line of the test's own), where nothing listens:
    # status asks the store, never the machine's DNS server.
    account = f"st{uuid.uuid4().hex[:12]}"
    with hosts_file.resolving(f"{account}.blob.localhost"):
        cfg = mirror_settings(tmp_path, free_port(), DOCKER_MIRROR_STORAGE_AZURE=True,
                              DOCKER_MIRROR_AZURE_ACCOUNT_NAME=account,
                              DOCKER_MIRROR_AZURE_REALM=f"localhost:{free_port()}",
                              DOCKER_MIRROR_AZURE_ACCOUNT_KEY="YXp1cmUta2V5LXMzY3JldA==")
        assert cfg.storage.azure_account_key == "YXp1cmUta2V5LXMzY3JldA=="
        doc = status.gather(cfg, client=None)
    up = doc["upstreams"][0]
    assert up["storage_dir"] is None and up["cached"] == []
    assert up["store"]["answering"] is False and "Connection refused" in up["store"]["error"], up["store"]
    assert status.exit_code(doc) == 1
    text = status.format_text(doc)
    assert "store:      NOT ANSWERING: azure container " in text
    assert "YXp1cmUta2V5LXMzY3JldA==" not in json.dumps(doc) + text


def test_container_state_and_mode_come_from_the_engine(tmp_path, docker_client, registry_image):
    prefix = f"status-test-{uuid.uuid4().hex[:8]}"
    cfg = mirror_settings(tmp_path, free_port(), DOCKER_MIRROR_CONTAINER_PREFIX=prefix,
                          DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_GHCR_REMOTE_URL="https://ghcr.io")
    container = docker_client.containers.create(
        registry_image.ref, name=f"{prefix}-dockerhub",
        labels={containers.LABEL_UPSTREAM: "dockerhub", containers.LABEL_MODE: OFFLINE, "docker-mirror-test": "1"})
    try:
        doc = status.gather(cfg, docker_client)
    finally:
        container.remove(force=True, v=True)
    assert [u["container"] for u in doc["upstreams"]] == [
        {"name": f"{prefix}-dockerhub", "state": "created", "mode": "offline"},
        {"name": f"{prefix}-ghcr", "state": "absent", "mode": None},
    ]
    text = status.format_text(doc)
    assert f"{prefix}-dockerhub: created (offline)" in text
    assert f"{prefix}-ghcr: absent" in text


@pytest.fixture
def tls_hub(tmp_path):
    """The Debian registry serving HTTPS on 127.0.0.1 with a self-signed certificate."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    config = tmp_path / "tls-registry.yml"
    config.write_text(json.dumps({
        "version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "storage" / "dockerhub")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "tls-test",
                 "tls": {"certificate": str(cert), "key": str(key)}}}))
    proc = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the TLS registry did not listen")
    yield port, cert, key
    proc.terminate()
    proc.wait(timeout=10)


def test_a_tls_mirror_is_probed_over_https(tmp_path, tls_hub):
    port, cert, key = tls_hub
    cfg = mirror_settings(tmp_path, port, DOCKER_MIRROR_TLS=True,
                          DOCKER_MIRROR_TLS_CERTIFICATE=str(cert), DOCKER_MIRROR_TLS_KEY=str(key))
    assert not probes.registry_answers("127.0.0.1", port)  # plain HTTP gets a 400 there
    [up] = status.gather(cfg, client=None)["upstreams"]
    assert up["url"] == f"https://127.0.0.1:{port}"
    assert up["answering"] is True
    assert status.check(cfg, "DOCKER_MIRROR_URL") == (f"https://127.0.0.1:{port}", 0)


def test_human_size():
    assert [render.human_size(n) for n in (0, 1023, 1536, 5 * 2**30, 3 * 2**40)] == [
        "0 B", "1023 B", "1.5 KiB", "5.0 GiB", "3.0 TiB"]


# ---------------------------------------------------------------- refresh record and schedule

def test_last_refresh_is_read_back(tmp_path):
    cfg = mirror_settings(tmp_path, free_port())
    layout = L.Layout.of(cfg)
    assert status.gather(cfg, client=None)["refresh"]["last"] is None
    assert "Last refresh: never" in status.format_text(status.gather(cfg, client=None))

    record = {"started": "2026-01-02T02:00:01+00:00", "finished": "2026-01-02T02:03:04+00:00",
              "result": "failed", "log": str(layout.logs_dir / "update-20260102-020001.log"),
              "failed": ["docker.io/minio/minio:latest"]}
    atomic_write(layout.last_refresh, json.dumps(record))
    doc = status.gather(cfg, client=None)
    assert doc["refresh"]["last"] == record
    text = status.format_text(doc)
    assert "Last refresh: 2026-01-02T02:03:04+00:00: failed" in text
    assert "docker.io/minio/minio:latest" in text and record["log"] in text

    layout.last_refresh.write_text("{not json")
    last = status.gather(cfg, client=None)["refresh"]["last"]
    assert last["result"] == "unreadable" and str(layout.last_refresh) in last["error"]
    assert "unreadable" in status.format_text(status.gather(cfg, client=None))


def test_next_elapse_from_systemd_analyze(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    base = 1704078000  # 2024-01-01 03:00:00 UTC: today's 02:00 has passed
    assert systemd.next_elapse("*-*-* 02:00:00", now=base) == "Tue 2024-01-02 02:00:00 UTC"
    assert systemd.next_elapse("*-*-* 02:00:00", now=base - 7200) == "Mon 2024-01-01 02:00:00 UTC"
    assert systemd.next_elapse("not a calendar", now=base) is None


def test_gather_schedules_the_next_refresh(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    base = 1704078000
    on = status.gather(mirror_settings(tmp_path, free_port()), client=None, now=base)["refresh"]
    assert on["schedule"] == "*-*-* 02:00:00" and on["enabled"] is True
    if systemd.systemd_is_pid1():
        assert on["next_source"] == "timer"
    else:
        assert on["next_source"] == "calendar"
        assert on["next"] == "Tue 2024-01-02 02:00:00 UTC"
        assert "Next refresh: Tue 2024-01-02 02:00:00 UTC" in status.format_text(
            status.gather(mirror_settings(tmp_path, free_port()), client=None, now=base))
    off = status.gather(mirror_settings(tmp_path, free_port(), DOCKER_MIRROR_REFRESH=False),
                        client=None)["refresh"]
    assert off["next"] is None and off["enabled"] is False


# ---------------------------------------------------------------- check_docker_mirror.sh

def test_checks(tmp_path, hub):
    cfg = mirror_settings(tmp_path, hub.port)
    url = f"http://127.0.0.1:{hub.port}"
    assert status.check(cfg, "DOCKER_MIRROR_URL") == (url, 0)
    assert status.mirror_url(cfg) == url
    assert status.check(cfg, "DOCKER_MIRROR_EXISTS") == ("true", 0)
    assert status.check(cfg, "DOCKER_MIRROR_DIR") == (str(tmp_path / "mirror"), 0)
    assert status.check(cfg, "IMAGE_EXISTS", f"minio/minio:{MINIO[1]}") == (None, 0)
    assert status.check(cfg, "IMAGE_EXISTS", f"docker.io/minio/minio@{hub.pushed[MINIO]}") == (None, 0)
    assert status.check(cfg, "IMAGE_EXISTS", "nginx:1") == (None, 0)
    assert status.check(cfg, "IMAGE_EXISTS", "minio/minio:latest") == (None, 1)
    # the same repository under a registry that is not mirrored is not in the cache
    assert status.check(cfg, "IMAGE_EXISTS", f"quay.io/minio/minio:{MINIO[1]}") == (None, 1)
    assert not status.image_cached(cfg, "ghcr.io/library/nginx:1")

    hub.stop()
    assert status.check(cfg, "DOCKER_MIRROR_URL") == (None, 1)
    assert status.mirror_url(cfg) is None
    assert status.check(cfg, "DOCKER_MIRROR_EXISTS") == ("false", 0)
    assert status.check(cfg, "IMAGE_EXISTS", "nginx:1") == (None, 0)  # still on disk


def test_image_exists_looks_in_the_storage_of_the_images_registry(tmp_path, hub):
    ghcr = registry_in(tmp_path / "storage" / "ghcr", tmp_path / "ghcr")
    try:
        push_image(ghcr.url, *ROUTER)
    finally:
        ghcr.stop()
    cfg = mirror_settings(tmp_path, hub.port, DOCKER_MIRROR_GHCR=True,
                          DOCKER_MIRROR_GHCR_REMOTE_URL="https://ghcr.io")
    assert status.image_cached(cfg, "ghcr.io/vllm-project/production-stack/router:latest")
    assert not status.image_cached(cfg, "vllm-project/production-stack/router:latest")  # Docker Hub
    assert not status.image_cached(cfg, f"ghcr.io/minio/minio:{MINIO[1]}")
    assert status.image_cached(cfg, f"minio/minio:{MINIO[1]}")


def test_bad_checks_are_refused(tmp_path):
    cfg = mirror_settings(tmp_path, free_port())
    with pytest.raises(status.UnknownCheck) as err:
        status.check(cfg, "DOCKER_MIRROR_SIZE")
    for name in status.CHECKS:
        assert name in str(err.value)
    assert err.value.exit_code != 0
    with pytest.raises(status.UnknownCheck, match="IMAGE_EXISTS needs an image"):
        status.check(cfg, "IMAGE_EXISTS")
    with pytest.raises(images.InvalidReference):
        status.check(cfg, "IMAGE_EXISTS", "Not A Reference")


def run_script(*args, cwd, config):
    env = {**os.environ, "KCONFIG_CONFIG": config}
    return subprocess.run(["sh", str(CHECK_SCRIPT), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def test_check_docker_mirror_script_passes_the_overrides_on(tmp_path):
    """docker-mirror-setup.sh DIR PORT NAME's mirror is the one asked about when the
    overrides follow the check."""
    mirror_settings(tmp_path, free_port())
    found = run_script("DOCKER_MIRROR_DIR", "--path", str(tmp_path / "other"), cwd=tmp_path, config=".config")
    assert (found.returncode, found.stdout) == (0, f"{tmp_path / 'other'}\n"), found.stderr
    bad = run_script("DOCKER_MIRROR_DIR", "--port", "70000", cwd=tmp_path, config=".config")
    assert bad.returncode == 2 and "CONFIG_DOCKER_MIRROR_PORT=70000 (command line)" in bad.stderr, bad.stderr


def test_check_docker_mirror_script(tmp_path, hub):
    mirror_settings(tmp_path, hub.port)
    # a relative KCONFIG_CONFIG is the caller's, though the script runs from the tree's top
    found = run_script("DOCKER_MIRROR_DIR", cwd=tmp_path, config=".config")
    assert (found.returncode, found.stdout) == (0, f"{tmp_path / 'mirror'}\n"), found.stderr
    found = run_script("DOCKER_MIRROR_URL", cwd=tmp_path, config=".config")
    assert (found.returncode, found.stdout) == (0, f"http://127.0.0.1:{hub.port}\n"), found.stderr
    found = run_script("IMAGE_EXISTS", f"minio/minio:{MINIO[1]}", cwd=tmp_path, config=".config")
    assert (found.returncode, found.stdout) == (0, "")
    found = run_script("IMAGE_EXISTS", "quay.io/minio/minio:latest", cwd=tmp_path,
                       config=str(tmp_path / ".config"))
    assert (found.returncode, found.stdout) == (1, "")
    found = run_script("NOPE", cwd=tmp_path, config=".config")
    assert found.returncode == 2 and "DOCKER_MIRROR_URL" in found.stderr
    hub.stop()
    found = run_script("DOCKER_MIRROR_URL", cwd=tmp_path, config=".config")
    assert (found.returncode, found.stdout) == (1, "")
