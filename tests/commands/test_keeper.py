"""The keeper and the way out, on a real engine, with a real upstream registry.

Here systemd does not run the host, so `make docker-mirror` starts the keeper
as a background process (tests/test_systemd_host.py covers the systemd unit).
The tests run in order on one mirror, each leaving it running for the next.
"""

import os
import subprocess
import sys
import time

import pytest
import requests

from mirror.config.kconfig import ROOT
from mirror.engine import containers
from mirror.errors import SettingsChanged
from mirror.host import locks
from mirror.model.modes import OFFLINE, PULL_THROUGH
from mirror.services import keeper
from support.mirrors import Mirror
from support.upstream import UpstreamRegistry, push_image

RECHECK = 10  # seconds: DOCKER_MIRROR_RECHECK_INTERVAL's lowest value


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with UpstreamRegistry(tmp_path_factory.mktemp("hub")) as registry:
        yield registry


@pytest.fixture(scope="module")
def mirror(tmp_path_factory, docker_client, registry_image, hub):
    m = Mirror(tmp_path_factory.mktemp("kept"), hub.url, DOCKER_MIRROR_KEEPER=True,
               DOCKER_MIRROR_RECHECK_INTERVAL=RECHECK)
    m.digest = push_image(hub.url, "minio/minio", "RELEASE.2023-03-20T20-16-18Z")
    m.first_setup = m.setup()
    yield m
    m.remove(docker_client)


def keeper_pid(mirror):
    # mirror.root, not the settings: switched off, .config no longer names the directory
    return locks.holder(mirror.root / ".keeper.lock")


def alive(pid) -> bool:
    """Running, not a zombie waiting for a parent that does not reap (as init in a sandbox may not)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def manifest_digest(mirror):
    answer = requests.get(f"{mirror.url()}/v2/minio/minio/manifests/RELEASE.2023-03-20T20-16-18Z", timeout=5,
                          headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    answer.raise_for_status()
    return answer.headers["Docker-Content-Digest"]


def wait_for(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.3)
    pytest.fail(f"not within {timeout} s: {what}")


def keeper_log(mirror):
    return (mirror.root / "logs" / "keeper.log").read_text()


def test_setup_starts_one_keeper_in_the_background(mirror):
    assert "keeper started in the background" in mirror.first_setup.stdout
    wait_for("the keeper holds its lock", lambda: keeper_pid(mirror), 10)
    pid = keeper_pid(mirror)
    assert "\0keeper\0" in open(f"/proc/{pid}/cmdline").read()
    mirror.setup()  # a second setup finds it and starts no other
    assert keeper_pid(mirror) == pid
    again = mirror.run("watch", check=False, timeout=20)  # the older name of keeper
    assert again.returncode == 75 and f"a keeper already runs for {mirror.root} (pid {pid})" in again.stderr
    status = mirror.run("status").stdout
    assert f"Keeper: running (pid {pid}), log {mirror.root}/logs/keeper.log" in status


def test_a_crash_looping_proxy_is_switched_to_offline_with_nobody_involved(mirror, docker_client, hub):
    assert manifest_digest(mirror) == mirror.digest   # cached while the upstream answers
    hub.stop()
    try:
        # As after an engine restart with the upstream away: 2.8 panics at start, Docker restarts it.
        mirror.container(docker_client).restart(timeout=2)
        wait_for("the mirror serves again, offline, and the keeper says why",
                 lambda: mirror.container(docker_client).labels[containers.LABEL_MODE] == OFFLINE
                 and manifest_digest(mirror) == mirror.digest
                 and "does not answer: serving the cache read-only" in keeper_log(mirror), 40)
        assert "a mirror container died: checking the mirrors" in keeper_log(mirror)
    finally:
        hub.start()


def test_the_upstream_back_returns_the_mirror_to_pull_through(mirror, docker_client, hub):
    fresh = push_image(hub.url, "library/busybox", "1.36")   # only the upstream has it

    def pulls_through() -> bool:
        answer = requests.get(f"{mirror.url()}/v2/library/busybox/manifests/1.36", timeout=5,
                              headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        return answer.status_code == 200 and answer.headers["Docker-Content-Digest"] == fresh

    wait_for("pull-through again, by itself", pulls_through, RECHECK * 3)
    assert mirror.container(docker_client).labels[containers.LABEL_MODE] == PULL_THROUGH


def test_a_serving_proxy_is_left_alone_when_its_upstream_blips(mirror, docker_client, hub):
    before = mirror.container(docker_client).id
    hub.stop()
    try:
        # a periodic check with the upstream away says it keeps the mirror, and keeps it
        wait_for("a check that keeps the serving mirror",
                 lambda: "the running pull-through mirror goes on serving its cache" in keeper_log(mirror),
                 RECHECK * 2 + 5)
        assert mirror.container(docker_client).id == before
        assert mirror.container(docker_client).labels[containers.LABEL_MODE] == PULL_THROUGH
        assert manifest_digest(mirror) == mirror.digest   # 2.8 serves its cache meanwhile
    finally:
        hub.start()


def test_remove_takes_down_keeper_and_containers_and_keeps_the_cache(mirror, docker_client):
    pid = keeper_pid(mirror)
    result = mirror.run("remove")
    assert f"stopped the keeper (pid {pid})" in result.stdout
    assert f"removed container {mirror.prefix}-dockerhub" in result.stdout
    assert keeper_pid(mirror) is None and not alive(pid)
    assert docker_client.containers.list(all=True, filters={"name": mirror.prefix}) == []
    assert (mirror.storage() / "docker/registry/v2/repositories/minio/minio").is_dir()
    assert f"the cache stays in {mirror.root}" in result.stdout
    status = mirror.run("status", check=False)
    assert status.returncode == 1 and "Keeper: not running" in status.stdout
    # set up again from the kept cache: the cached image is served at once, with its digest
    mirror.setup()
    assert manifest_digest(mirror) == mirror.digest


def test_switching_the_mirror_off_and_setting_up_takes_it_down(mirror, docker_client):
    wait_for("a keeper", lambda: keeper_pid(mirror), 10)
    # The host's own mirror (the Quick start's, Kconfig's default prefix), not other tests'
    # containers: those come and go as their tests run beside this one.
    host_mirrors = {c.name for c in docker_client.containers.list(all=True)
                    if not c.name.startswith("dmtest-")}
    mirror.configure(ENABLE_DOCKER_MIRROR=False)
    try:
        result = mirror.setup()
        assert "is switched off" in result.stdout
        # .config no longer names the directory: the keeper, reading it again, stops by itself
        wait_for("the keeper stops", lambda: keeper_pid(mirror) is None, 20)
        assert "switched off in .config: the keeper stops" in keeper_log(mirror)
        # Whichever read the switched-off .config first took the container down: setup, or the
        # keeper (a periodic check between the edit and the setup), which says so.
        name = f"{mirror.prefix}-dockerhub"
        assert (f"removed container {name}" in result.stdout and "took down what was set up" in result.stdout) \
            or f"removed container {name}: the mirror is switched off" in keeper_log(mirror), result.stdout
        assert docker_client.containers.list(all=True, filters={"name": mirror.prefix}) == []
        assert (mirror.storage() / "docker/registry/v2/repositories/minio/minio").is_dir()
        # Kconfig's default prefix and directory are not this mirror's: nothing else was touched
        assert host_mirrors <= {c.name for c in docker_client.containers.list(all=True)}
        assert "nothing is set up here" in mirror.setup().stdout
        refused = mirror.run("remove", "--purge", check=False)
        assert refused.returncode == 2 and "no longer says where the cache is" in refused.stderr
    finally:
        mirror.configure(ENABLE_DOCKER_MIRROR=True)


def test_purge_deletes_the_cache_and_refuses_what_is_not_a_mirror(mirror, docker_client, tmp_path):
    mirror.setup()
    wait_for("a keeper", lambda: keeper_pid(mirror), 10)
    # the Make target, with no terminal to ask: PURGE=1 is the answer
    result = subprocess.run(["make", "-s", "docker-mirror-remove", "PURGE=1"], cwd=ROOT,
                            env={**os.environ, "KCONFIG_CONFIG": str(mirror.config), "PYTHON": sys.executable},
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"deleted {mirror.root}" in result.stdout
    assert not mirror.root.exists() and keeper_pid(mirror) is None
    assert docker_client.containers.list(all=True, filters={"name": mirror.prefix}) == []

    precious = tmp_path / "precious"
    (precious / "data").mkdir(parents=True)
    mirror.configure(DOCKER_MIRROR_PATH=str(precious))
    refused = mirror.run("remove", "--purge", check=False)
    assert refused.returncode == 2 and "does not look like a mirror directory" in refused.stderr
    assert (precious / "data").is_dir() and "Traceback" not in refused.stderr


def test_a_check_on_settings_older_than_config_touches_nothing(tmp_path, docker_client, registry_image, hub):
    """A keeper's check that waited for a `make docker-mirror` must not apply the settings it read
    before: .config changed since, so the check stops before any container is touched."""
    m = Mirror(tmp_path / "stale", hub.url)
    try:
        with pytest.raises(SettingsChanged):
            keeper.check(m.settings, docker_client, log=lambda _: None, read_from="0" * 64)
        assert docker_client.containers.list(all=True, filters={"name": m.prefix}) == []
        # Read at the .config in force: the same check brings the mirror up.
        keeper.check(m.settings, docker_client, log=lambda _: None, read_from=keeper.config_digest(m.settings))
        assert containers.mirror_container(docker_client, m.settings, m.settings.upstreams[0]).state == "running"
    finally:
        m.remove(docker_client)
