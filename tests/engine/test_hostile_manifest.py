"""A hostile upstream serving a 16 MiB manifest gets nowhere through a pull-through mirror.

The mirror is what `make docker-mirror` runs (the registry engine built here,
in its container with the product's limits); the upstream is a real HTTP
server on loopback (support.huge_manifest) answering /v2/ like a registry,
then sending manifests four times over the 4 MiB the engine accepts
(patches/distribution/0003-proxy-manifest-size-limit.patch), with and without
a Content-Length. The client gets an error, nothing is stored, the
registry's memory stays bounded, and the container runs with its limits.
"""

import subprocess
from pathlib import Path

import pytest
import requests

from mirror.model.resources import MIB
from support.huge_manifest import MANIFEST_TYPE, HugeManifestUpstream
from support.mirrors import Mirror

pytestmark = pytest.mark.engine

SIZE = 16 << 20
MEMORY_MB, PIDS = 128, 300


@pytest.fixture
def hostile():
    with HugeManifestUpstream(SIZE) as upstream:
        yield upstream


@pytest.fixture
def mirror(tmp_path, hostile, docker_client, registry_image):
    m = Mirror(tmp_path / "m", hostile.url, DOCKER_MIRROR_REGISTRY_MEMORY_MB=MEMORY_MB,
               DOCKER_MIRROR_CONTAINER_PIDS_LIMIT=PIDS)
    m.setup()
    yield m
    m.remove(docker_client)


def memory_cgroup(container) -> Path:
    return Path("/sys/fs/cgroup/memory/docker") / container.id


def test_a_16_mib_manifest_is_refused_never_stored_and_memory_stays_bounded(mirror, hostile, docker_client):
    container = mirror.container(docker_client)
    host = container.attrs["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["PidsLimit"]) == (MEMORY_MB * MIB, MEMORY_MB * MIB, PIDS)
    cgroup = memory_cgroup(container)
    before = int((cgroup / "memory.usage_in_bytes").read_text())
    (cgroup / "memory.max_usage_in_bytes").write_text("0")   # the peak from now on

    for repository in ("hostile/announced", "hostile/chunked"):
        hostile.sent = 0
        answer = requests.get(f"{mirror.url()}/v2/{repository}/manifests/latest",
                              headers={"Accept": MANIFEST_TYPE}, timeout=60)
        assert answer.status_code >= 400, (repository, answer.status_code, len(answer.content))
        assert "over the 4194304-byte limit" in answer.text, answer.text[:300]
        # Never the whole manifest (what left the upstream includes the mirror's receive buffer).
        assert hostile.sent < SIZE, f"{repository}: the mirror took {hostile.sent} manifest bytes"
    pulled = subprocess.run(["docker", "pull", f"127.0.0.1:{mirror.port}/hostile/chunked:latest"],
                            capture_output=True, text=True, timeout=120)
    assert pulled.returncode != 0, pulled.stdout

    peak = int((cgroup / "memory.max_usage_in_bytes").read_text())
    # Unpatched, the same requests took the registry from ~10 MiB to ~110 MiB and stored the manifest.
    assert peak - before < 40 * MIB, f"grew by {(peak - before) / MIB:.0f} MiB"
    repositories = mirror.storage() / "docker/registry/v2/repositories"
    assert not list(repositories.glob("hostile/*/_manifests/revisions/sha256/*/link"))
    blob = mirror.storage() / "docker/registry/v2/blobs/sha256" / hostile.digest[7:9] / hostile.digest[7:]
    assert not blob.exists()
    container.reload()
    assert container.status == "running" and container.attrs["RestartCount"] == 0
    assert not container.attrs["State"]["OOMKilled"]

    # Another limit in .config: the next `make docker-mirror` re-creates the container with it.
    mirror.configure(DOCKER_MIRROR_REGISTRY_MEMORY_MB=MEMORY_MB * 2)
    assert "recreated" in mirror.setup().stdout
    assert mirror.container(docker_client).attrs["HostConfig"]["Memory"] == MEMORY_MB * 2 * MIB
