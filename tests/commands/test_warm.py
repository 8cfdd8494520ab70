"""The warm engine on real mirrors: exact digests, no refetch, failures isolated (pins and expiry: test_lifecycle)."""

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from mirror.services import warm, warm_engine
from mirror.config import image_lists
from mirror.config.kconfig import ROOT
from mirror.model import manifests
from mirror.net import registry_api as regapi
from support.configs import QUIET_PROBES, image_list
from support.throttle import ThrottlingProxy
from support.upstream import make_layer, push_image


def blob_files(storage: Path) -> dict[str, Path]:
    return {p.parent.name: p for p in (storage / "docker/registry/v2/blobs/sha256").glob("*/*/data")}


def test_warm_fills_the_cache_with_upstream_digests_and_rewarm_fetches_nothing(tmp_path, hub, make_mirror,
                                                                             docker_client):
    layers = [make_layer(300_000, seed) for seed in ("base", "minio")]
    digests = {"minio": push_image(hub.url, "minio/minio", "RELEASE.x", layers=layers),
               "shared": push_image(hub.url, "minio/minio", "other-tag", layers=layers[:1]),
               "nginx": push_image(hub.url, "library/nginx", "1.27")}
    listing = image_list(tmp_path, "# images", "minio/minio:RELEASE.x", "minio/minio:other-tag",
                         "nginx:1.27  # trailing comment", "docker.io/library/nginx:1.27")
    m = make_mirror(hub.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=listing)
    lines = []
    assert warm.warm(m.settings, log=lines.append, client=docker_client) == []
    manifest = (m.root / "images/manifest.txt").read_text()
    for ref, key in (("docker.io/minio/minio:RELEASE.x", "minio"), ("docker.io/minio/minio:other-tag", "shared"),
                     ("docker.io/library/nginx:1.27", "nginx")):
        assert f"{ref}\t{digests[key]}\tdocker.io\t" in manifest
    assert manifest.count("docker.io/library/nginx:1.27") == 1  # deduplicated after normalising
    # The mirror holds it all, checked by content: every stored blob matches its digest.
    stored = blob_files(m.storage())
    for layer in layers:
        assert hashlib.sha256(layer).hexdigest() in stored
    for hexdigest, path in stored.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == hexdigest
    # The shared base layer went through the proxy once.
    shared_fetches = sum(1 for line in lines if "fetched 0 B" not in line and "ok" in line)
    assert shared_fetches >= 1
    # Re-warm: nothing fetched, quickly.
    hub.stop()  # nothing may even ask the upstream for blobs now
    hub.start()
    again = []
    start = time.monotonic()
    engine = warm_engine.Engine(m.settings, log=again.append, platforms={manifests.host_platform()})
    results = engine.run(image_lists.wanted_images(m.settings)[0])
    elapsed = time.monotonic() - start
    assert all(r.ok for r in results), again
    assert sum(r.fetched_bytes for r in results) == 0
    assert elapsed < 1.0, f"re-warm took {elapsed:.2f} s"


def test_multi_platform_index_warms_the_host_platform_or_all(tmp_path, hub, make_mirror):
    index = push_image(hub.url, "library/multi", "1", platforms=["linux/amd64", "linux/arm64"])
    listing = image_list(tmp_path, "multi:1")
    one = make_mirror(hub.url, "one", DOCKER_MIRROR_IMAGES_EXTRA_LIST=listing)
    assert warm.warm(one.settings, log=lambda _: None) == []
    top = regapi.RegistryAPI(hub.url).get_manifest("library/multi", "1")
    assert top.digest == index and top.is_index
    children = {c["platform"]["architecture"]: c["digest"] for c in top.json["manifests"]}
    revisions = one.storage() / "docker/registry/v2/repositories/library/multi/_manifests/revisions/sha256"
    cached = {p.name for p in revisions.iterdir()}
    host_arch = manifests.host_platform().split("/")[1]
    assert children[host_arch].split(":")[1] in cached
    assert all(d.split(":")[1] not in cached for arch, d in children.items() if arch != host_arch)
    every = make_mirror(hub.url, "all", DOCKER_MIRROR_IMAGES_EXTRA_LIST=listing,
                        DOCKER_MIRROR_PULL_ALL_PLATFORMS=True)
    assert warm.warm(every.settings, log=lambda _: None) == []
    revisions = every.storage() / "docker/registry/v2/repositories/library/multi/_manifests/revisions/sha256"
    assert {d.split(":")[1] for d in children.values()} <= {p.name for p in revisions.iterdir()}


def test_failures_do_not_stop_the_others_and_set_the_exit_code(tmp_path, hub, make_mirror):
    push_image(hub.url, "library/good", "1")
    push_image(hub.url, "library/good", "2")
    listing = image_list(tmp_path, "good:1", "library/missing:404", "Bad/Reference::", "quay.io/coreos/etcd:v3",
                         "good:2")
    m = make_mirror(hub.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=listing)
    result = m.run("pull", check=False)
    assert result.returncode == 1
    out = result.stdout
    assert "docker.io/library/good:1" in out and "docker.io/library/good:2" in out
    assert f"{listing}:3:" in out  # the bad line, by file and line
    assert "docker.io/library/missing:404: " in out and "FAILED" in out
    assert "registry quay.io is not mirrored" in out
    manifest = (m.root / "images/manifest.txt").read_text()
    assert "docker.io/library/good:1\t" in manifest and "docker.io/library/good:2\t" in manifest
    last = json.loads((m.root / "logs/last-refresh.json").read_text())
    assert last["result"] == "failed"
    assert "docker.io/library/missing:404" in last["failed"]


@pytest.mark.parametrize("hang_up", [False, True], ids=["read-through", "hang-up"])
def test_upstream_cut_mid_transfer_leaves_no_corrupt_blob(tmp_path, hub, make_mirror, hang_up):
    big = make_layer(6_000_000, "big")
    digest = push_image(hub.url, "library/big", "1", layers=[big])
    with ThrottlingProxy(("127.0.0.1", hub.port), rate_bytes=2_000_000) as slow:
        m = make_mirror(slow.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "big:1"))
        wanted = image_lists.wanted_images(m.settings)[0]
        timer = threading.Timer(1.0, slow.cut)
        timer.start()
        engine = warm_engine.Engine(m.settings, log=lambda _: None, hang_up=hang_up, stall_timeout=3)
        [result] = engine.run(wanted)
        timer.join()
        if hang_up:   # the mirror's own fetch was cut: nothing to read again, the image fails
            assert not result.ok and result.reference == "docker.io/library/big:1"
        else:         # the warm's read broke off: tried again, through an upstream that answers
            assert result.ok, result.error
        for hexdigest, path in blob_files(m.storage()).items():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == hexdigest
        # Served content is whole or absent, never a truncated blob under a digest.
        answer = requests.get(f"{m.url()}/v2/library/big/blobs/sha256:{hashlib.sha256(big).hexdigest()}",
                              timeout=30)
        if answer.status_code == 200:
            assert answer.content == big
        # The upstream answers again: the next run completes.
        assert warm.warm(m.settings, log=lambda _: None) == []
    assert f"docker.io/library/big:1\t{digest}\t" in (m.root / "images/manifest.txt").read_text()


def test_shared_layers_across_repositories_are_fetched_once_and_served_offline(tmp_path, hub, make_mirror,
                                                                              docker_client):
    base = make_layer(2_000_000, "shared-base")
    names = [f"library/app{n}" for n in range(4)]
    for n, name in enumerate(names):
        push_image(hub.url, name, "1", layers=[base, make_layer(200_000, f"own-{n}")])
    with ThrottlingProxy(("127.0.0.1", hub.port), rate_bytes=20_000_000) as counted:
        m = make_mirror(counted.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(
            tmp_path, *(f"{name}:1" for name in names)))
        assert warm.warm(m.settings, log=lambda _: None, client=docker_client) == []
        # Each layer crossed the wire about once: distribution 2.8 alone fetches each
        # twice (>= 2x), and the shared one again per repository (~4x). What is left
        # over is what the aborted client copies had buffered when the engine hung up.
        assert counted.bytes_down < (len(base) + 4 * 200_000) * 1.5
    hub.stop()
    try:
        api = regapi.RegistryAPI(m.url(), retries=0)
        for name in names:
            manifest = api.get_manifest(name, "1")
            for blob in manifests.blobs_of(manifest.json):
                api.fetch_blob(name, blob["digest"])
    finally:
        hub.start()


def test_two_runs_at_once_wait_or_refuse(tmp_path, hub, make_mirror):
    big = make_layer(3_000_000, "slow")
    push_image(hub.url, "library/slow", "1", layers=[big])
    # 6 s at this rate: the first run still holds the lock when the other two start
    # (the engine fetches once, so a faster link would let it finish first).
    with ThrottlingProxy(("127.0.0.1", hub.port), rate_bytes=500_000) as slow:
        m = make_mirror(slow.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "slow:1"))
        env = {**os.environ, **QUIET_PROBES}
        cmd = [sys.executable, "-m", "mirror", "--config", str(m.config), "pull"]
        first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not (m.root / ".refresh.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        refused = m.run("pull", "--no-wait", check=False)
        assert refused.returncode == 75
        assert "another refresh is running" in refused.stderr
        waited = m.run("pull", check=False, timeout=120)
        assert waited.returncode == 0
        assert "waiting for it" in waited.stdout
        assert first.wait(timeout=60) == 0
        first.stdout.close()


def test_plain_registry_gets_images_copied_with_digests_preserved(tmp_path, hub, make_mirror):
    single = push_image(hub.url, "minio/minio", "RELEASE.x")
    index = push_image(hub.url, "library/multi", "2", platforms=["linux/amd64", "linux/arm64"], media="oci")
    m = make_mirror(hub.url, DOCKER_MIRROR_PULL_THROUGH_CACHE=False,
                    DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "minio/minio:RELEASE.x", "multi:2"))
    assert warm.warm(m.settings, log=lambda _: None) == []
    hub.stop()
    try:
        api = regapi.RegistryAPI(m.url())
        assert api.get_manifest("minio/minio", "RELEASE.x").digest == single
        top = api.get_manifest("library/multi", "2")
        assert top.digest == index
        for child in top.json["manifests"]:
            assert api.get_manifest("library/multi", child["digest"]).digest == child["digest"]
    finally:
        hub.start()
    again = warm_engine.Engine(m.settings, log=lambda _: None).run(image_lists.wanted_images(m.settings)[0])
    assert sum(r.fetched_bytes for r in again) == 0


def test_progress_bar_on_a_terminal_plain_timestamped_lines_otherwise(tmp_path, hub, make_mirror):
    import fcntl
    import pty
    import struct
    import termios
    push_image(hub.url, "library/tty", "1")
    m = make_mirror(hub.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "tty:1"))
    cmd = [sys.executable, "-m", "mirror", "--config", str(m.config), "pull"]
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a real terminal's size
    process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **QUIET_PROBES},
                               stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command is done
            break
        if not chunk:
            break
        screen += chunk
    assert process.wait(timeout=60) == 0
    os.close(leader)
    text = screen.decode(errors="replace")
    assert "1/1" in text and "image" in text and "100%" in text
    assert not any(line[:4].isdigit() and line[4] == "-" for line in text.splitlines())
    piped = m.run("pull")
    assert piped.stdout and all(line[:4].isdigit() and line[4] == "-"
                                for line in piped.stdout.splitlines() if line.strip())
    assert "100%" not in piped.stdout + piped.stderr
