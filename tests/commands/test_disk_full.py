"""The cache on a file system that fills up (a real tmpfs, mounted for the test): the refresh
says the disk is full, never a traceback, the policy makes room (unpinned, least recently
pulled first), and the cache stays usable."""

import json
import os
import re
import subprocess
from pathlib import Path

import docker.errors
import pytest

from mirror.services import lifecycle, refresh, status

from mirror.services import warm
from mirror.host import diskspace, storage, usage
from mirror.host.runlog import RunLog
from support.mirrors import mirror_factory
from support.upstream import UpstreamRegistry, make_layer, push_image

MB = 1_000_000


def pull(docker_client, m, name) -> str:
    """`docker pull` of library/NAME:1 through the mirror; its digest. The local copy goes after."""
    image = docker_client.images.pull(f"127.0.0.1:{m.port}/library/{name}:1")
    try:  # the engine is shared: another test's pull of the same content may remove it first
        docker_client.images.remove(image.id, force=True)
    except docker.errors.ImageNotFound:
        pass
    return image.attrs["RepoDigests"][0].split("@")[1]


@pytest.fixture
def small_disk(tmp_path):
    """`mount(dir, size)`: a tmpfs of `size` at `dir`, unmounted at the end (after the mirrors go)."""
    mounted = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                       check=True)
        mounted.append(path)
        return path
    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def hub(tmp_path):
    with UpstreamRegistry(tmp_path / "hub") as registry:
        yield registry


@pytest.fixture
def make_mirror(small_disk, tmp_path, docker_client, registry_image):
    # Requests small_disk first: its unmount runs after the mirrors' containers are gone.
    with mirror_factory(docker_client, lambda name: tmp_path / name) as make:
        yield make


def test_the_log_writer_survives_a_full_disk(tmp_path, small_disk):
    disk = small_disk(tmp_path / "logs", "64k")
    said = []
    log = RunLog(disk / "update.log", echo=said.append)
    log("first line")
    filler = disk / "filler"
    with pytest.raises(OSError) as full:
        with open(filler, "wb") as out:
            while True:
                out.write(os.urandom(4096))
                out.flush()
    assert diskspace.is_disk_full(full.value)
    for n in range(3):  # longer than the file's last page holds: each needs a new one
        log(f"while full {n} " + "x" * 5000)  # no exception: the run goes on
    warnings = [s for s in said if s.startswith("warning: cannot write the log")]
    assert len(warnings) == 1 and "No space left on device" in warnings[0], said
    assert said[-1].startswith("while full 2 ")  # the output still gets every line
    filler.unlink()
    log("room again")
    log.close()
    text = (disk / "update.log").read_text()
    assert "first line" in text and "room again" in text
    assert "(3 line(s) could not be written here)" in text
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} ")
    assert all(stamp.match(line) for line in text.splitlines()), text  # a cut line is ended


def test_a_full_disk_is_said_room_is_made_lru_first_and_the_cache_serves(tmp_path, hub, small_disk,
                                                                         make_mirror, docker_client):
    layers = {"keep": 3 * MB, "old": 6 * MB, "middle": 3 * MB, "recent": 2 * MB, "big": 8 * MB}
    digests = {name: push_image(hub.url, f"library/{name}", "1", layers=[make_layer(size, f"full-{name}")])
               for name, size in layers.items()}
    # The mirror's whole directory (cache, logs, lifecycle records) on a 20 MiB file system.
    small_disk(tmp_path / "m" / "mirror", "20m")
    images = tmp_path / "images.txt"
    images.write_text("keep:1\n")
    m = make_mirror(hub.url, DOCKER_MIRROR_IMAGES_EXTRA_LIST=str(images))
    assert warm.warm(m.settings, log=lambda _: None, client=docker_client, gc=False) == []
    # Ad hoc pulls in this order; the refresh below runs on the real clock, so does this.
    for name in ("old", "middle", "recent"):
        pull(docker_client, m, name)
        lifecycle.ingest(m.settings, docker_client)
    free = diskspace.space(m.root).free
    assert free < 8 * MB, free  # the big image cannot fit as things are

    images.write_text("keep:1\nbig:1\n")
    lines = []
    code = refresh.run(m.settings, docker_client, echo=lines.append, warm=warm.warm)
    text = "\n".join(lines)
    assert code == 1, text
    assert "Traceback" not in text
    [blob_error] = [line for line in lines if "docker.io/library/big:1: FAILED" in line]
    assert "disk full" in blob_error and "upstream gone" not in blob_error, blob_error
    assert f"{m.storage()} has " in blob_error  # the free space of the cache's file system
    record = json.loads((m.root / "logs" / "last-refresh.json").read_text())
    assert record["result"] == "failed"
    assert record["failed"] == ["docker.io/library/big:1 (disk full)"]
    assert record["error"].startswith("disk full: the cache's file system ran out of room")
    log_text = Path(record["log"]).read_text()
    assert "disk full" in log_text and "Traceback" not in log_text
    shown = status.format_text(status.gather(m.settings, docker_client))
    assert "big:1 (disk full)" in shown and "error:      disk full" in shown

    # Room was made: unpinned images, least recently pulled first, no more than needed.
    assert not storage.revisions(m.storage(), "library/old")
    assert not storage.revisions(m.storage(), "library/middle")
    assert storage.revisions(m.storage(), "library/recent")
    assert storage.revisions(m.storage(), "library/keep")
    dropped = [line for line in lines if " dropping " in line]
    assert [re.search(r" dropping (\S+?):", d)[1] for d in dropped] == [
        "docker.io/library/old", "docker.io/library/middle"], dropped
    assert all("to make room on a full disk" in d for d in dropped), dropped
    assert diskspace.space(m.root).free >= 8 * MB

    # The cache stays usable: the kept images pull, and the next refresh fits the big one.
    for name in ("keep", "recent"):
        assert pull(docker_client, m, name) == digests[name]
    again = []
    assert refresh.run(m.settings, docker_client, echo=again.append, warm=warm.warm) == 0, "\n".join(again)
    assert storage.revisions(m.storage(), "library/big") == [digests["big"]]
    assert "error" not in json.loads((m.root / "logs" / "last-refresh.json").read_text())
    assert usage.read_pins(m.root)["docker.io/library/big:1"]["digests"] == [digests["big"]]

