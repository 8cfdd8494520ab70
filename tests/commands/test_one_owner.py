"""Two checkouts with the same container prefix on one host (issue 19: the second
replaced the first's container, the first's keeper put its own back, no message).

A second `make docker-mirror` shares the first's mirror when its settings are the
same (kdevops trees sharing /mirror/docker), and refuses, naming the owner's
.config and what differs, when not; either way the first's container is never
replaced and its pulls go on. Tests run in order on one first mirror.
"""

import os
import threading
import time

import pytest
import requests

from mirror.host import locks
from support.checkout import Checkout
from support.upstream import UpstreamRegistry, free_port, push_image

RECHECK = 10
TAG = "RELEASE.2023-03-20T20-16-18Z"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with UpstreamRegistry(tmp_path_factory.mktemp("hub")) as registry:
        registry.digest = push_image(registry.url, "minio/minio", TAG)
        yield registry


@pytest.fixture(scope="module")
def trees(tmp_path_factory, docker_client, registry_image, hub):
    """The first checkout, set up with its keeper; the shared mirror directory and prefix."""
    base = tmp_path_factory.mktemp("owners")
    first = Checkout(base / "first", hub.url, mirror_dir=base / "shared-mirror",
                     DOCKER_MIRROR_KEEPER=True, DOCKER_MIRROR_RECHECK_INTERVAL=RECHECK)
    first.run("docker-mirror")
    made = [first]
    deadline = time.monotonic() + 10
    while locks.holder(first.root / ".keeper.lock") is None and time.monotonic() < deadline:
        time.sleep(0.2)   # the first's keeper, started in the background, takes its lock

    def second(name, **values):
        tree = Checkout(base / name, hub.url, prefix=first.prefix, port=values.pop("port", first.port),
                        mirror_dir=first.root, DOCKER_MIRROR_KEEPER=True,
                        DOCKER_MIRROR_RECHECK_INTERVAL=RECHECK, **values)
        made.append(tree)
        return tree

    yield first, second
    for tree in reversed(made):
        tree.cleanup(docker_client)


class Puller:
    """Pulls the first's image manifest over and over, in a thread, counting failures."""

    def __init__(self, url):
        self.url, self.failures, self.pulls = url, [], 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stopping.is_set():
            try:
                answer = requests.get(f"{self.url}/v2/minio/minio/manifests/{TAG}", timeout=5,
                                      headers={"Accept": MANIFEST})
                if answer.status_code != 200:
                    self.failures.append(answer.status_code)
            except requests.RequestException as err:
                self.failures.append(repr(err))
            self.pulls += 1
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()


def keepers_of(config) -> list[int]:
    """The keeper processes started for `config` (from their command lines)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = open(f"/proc/{entry}/cmdline").read().split("\0")
            except OSError:
                continue
            if "keeper" in argv and str(config) in argv:
                found.append(int(entry))
    return found


def test_identical_settings_share_the_first_mirror(trees, docker_client, hub):
    first, second = trees
    name = f"{first.prefix}-dockerhub"
    before = docker_client.containers.get(name).id
    keeper = locks.holder(first.root / ".keeper.lock")
    other = second("same")
    with Puller(first.url()) as puller:
        result = other.run("docker-mirror")
        result_again = other.run("docker-mirror")   # and again: still nothing changed
    assert f"was set up by {first.config} with the same settings" in result.stdout
    assert "(shared)" in result.stdout and "(shared)" in result_again.stdout
    assert docker_client.containers.get(name).id == before
    assert puller.pulls > 0 and puller.failures == []
    # the first's keeper keeps it; the second started none
    assert locks.holder(first.root / ".keeper.lock") == keeper and keepers_of(other.config) == []
    # the second uses the mirror: its status sees it answering
    status = other.run("status")
    assert status.returncode == 0 and f"Set up by: {first.config} (the same settings" in status.stdout
    # and its way out takes down nothing of the first's
    removed = other.run("remove")
    assert f"this checkout uses the mirror {first.config} set up" in removed.stdout
    assert docker_client.containers.get(name).id == before
    assert locks.holder(first.root / ".keeper.lock") == keeper


def test_other_settings_are_refused_and_nothing_is_touched(trees, docker_client):
    first, second = trees
    name = f"{first.prefix}-dockerhub"
    before = docker_client.containers.get(name).id
    other_port = free_port()
    other = second("other-port", port=other_port)
    with Puller(first.url()) as puller:
        result = other.run("docker-mirror", check=False)
        time.sleep(1)   # a keeper started by mistake would be up by now
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"belong to the mirror of {first.config}" in result.stderr
    assert f"DOCKER_MIRROR_PORT: {first.port} there, {other_port} here" in result.stderr
    assert "Nothing was changed" in result.stderr
    assert docker_client.containers.get(name).id == before
    assert puller.pulls > 0 and puller.failures == []
    assert keepers_of(other.config) == []
    # nothing listens on the second's port
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{other_port}/v2/", timeout=2)


def test_a_mirror_whose_owner_is_gone_is_taken_over(trees, docker_client):
    first, second = trees
    name = f"{first.prefix}-dockerhub"
    keeper = locks.holder(first.root / ".keeper.lock")
    first.config.unlink()   # the first checkout deleted, without make docker-mirror-remove
    deadline = time.monotonic() + RECHECK + 5
    while locks.holder(first.root / ".keeper.lock") == keeper and time.monotonic() < deadline:
        time.sleep(0.2)
    assert locks.holder(first.root / ".keeper.lock") is None   # its keeper stopped (one interval)
    other = second("heir", port=free_port())
    result = other.run("docker-mirror")
    assert f"taking over {name}: {first.config} is gone" in result.stdout
    container = docker_client.containers.get(name)
    assert container.labels["docker-mirror.config"] == str(other.config)
    assert requests.get(f"{other.url()}/v2/minio/minio/manifests/{TAG}", timeout=5,
                        headers={"Accept": MANIFEST}).status_code == 200   # the cache came along
