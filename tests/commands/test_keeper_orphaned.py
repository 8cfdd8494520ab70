"""A keeper whose checkout, .config or mirror directory is deleted stops, and never
re-creates a container (issue 19: keepers outlived their checkout and put a removed
container back, with bind mounts to directories that no longer existed).

Each test runs a throwaway checkout (tests/support/checkout.py) with its own prefix
and port; `make docker-mirror` starts its keeper in the background (no systemd here).
"""

import os
import re
import shutil
import signal
import time

import docker.errors
import pytest

from mirror.host import locks
from support.checkout import Checkout
from support.upstream import UpstreamRegistry, push_image

RECHECK = 10  # seconds: DOCKER_MIRROR_RECHECK_INTERVAL's lowest value
CHECK_SECONDS = 3   # more than the keeper's first check takes here (about 1 s)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with UpstreamRegistry(tmp_path_factory.mktemp("hub")) as registry:
        push_image(registry.url, "minio/minio", "RELEASE.2023-03-20T20-16-18Z")
        yield registry


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that does not reap (as init in a sandbox may not)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def delete(directory):
    """rm -rf, at once: moved out of the way (a keeper mid-check, or the registry, may write
    into it while rmtree walks it); deleted at the end of the test."""
    directory.rename(directory.with_name(f".deleted-{directory.name}"))


def keeper_said(tree) -> str:
    for root in (tree.root, tree.root.with_name(f".deleted-{tree.root.name}"),
                 tree.dir.with_name(f".deleted-{tree.dir.name}") / tree.root.name):
        if (root / "logs" / "keeper.log").exists():
            return (root / "logs" / "keeper.log").read_text()
    return "(no keeper log)"


def absent(client, name: str) -> bool:
    try:
        client.containers.get(name)
    except docker.errors.NotFound:
        return True
    return False


@pytest.mark.parametrize("deleted, between_checks", [("checkout", True), ("mirror directory", True),
                                                     (".config", True), ("mirror directory", False)])
def test_a_keeper_stops_when_what_it_keeps_is_deleted(deleted, between_checks, tmp_path, docker_client,
                                                       registry_image, hub):
    outside = tmp_path / "data" if deleted == "mirror directory" else None
    tree = Checkout(tmp_path / "tree", hub.url, mirror_dir=outside,
                    DOCKER_MIRROR_KEEPER=True, DOCKER_MIRROR_RECHECK_INTERVAL=RECHECK)
    name = f"{tree.prefix}-dockerhub"
    pid = None
    try:
        said = tree.run("docker-mirror").stdout
        pid = int(re.search(r"keeper started in the background \(pid (\d+)\)", said).group(1))
        deadline = time.monotonic() + 10
        while locks.holder(tree.root / ".keeper.lock") != pid and time.monotonic() < deadline:
            time.sleep(0.1)   # a keeper that runs, holding its lock
        assert alive(pid) and locks.holder(tree.root / ".keeper.lock") == pid
        if between_checks:
            # Where a keeper spends its time. A deletion in the second a check is halfway (the
            # other case) may leave a few files that check writes made anew (docs/setup.md),
            # but never a container.
            time.sleep(CHECK_SECONDS)
        {"checkout": lambda: delete(tree.dir), "mirror directory": lambda: delete(tree.root),
         ".config": tree.config.unlink}[deleted]()
        # Removed by hand at once: the container's death wakes the keeper right away, the
        # hardest case: it must see what is gone instead of putting the container back.
        docker_client.containers.get(name).remove(force=True, v=True)
        deadline = time.monotonic() + RECHECK + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(pid), f"the keeper still runs {RECHECK + 5} s after its {deleted} was deleted:\n" \
            + keeper_said(tree)
        assert absent(docker_client, name), f"the keeper re-created {name} after its {deleted} was deleted"
        if deleted == ".config":
            said = (tree.root / "logs" / "keeper.log").read_text()
            last = said.rstrip().splitlines()[-1]
            assert str(tree.config) in last and last.endswith("the keeper stops"), said
        elif between_checks:
            # nothing made the deleted directory anew (the container would bind-mount it)
            assert not tree.root.exists(), sorted(str(p.relative_to(tree.root)) for p in tree.root.rglob("*"))
    finally:
        if pid and alive(pid):   # a failed test: its keeper would put the container back
            os.kill(pid, signal.SIGTERM)
        for container in docker_client.containers.list(all=True, filters={"name": tree.prefix}):
            container.remove(force=True, v=True)
        for away in tmp_path.glob(".deleted-*"):
            shutil.rmtree(away, ignore_errors=True)
