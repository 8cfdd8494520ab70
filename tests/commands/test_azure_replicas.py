"""Three replicas on the azure backend behind HAProxy, with Redis (real processes on loopback).

`make docker-mirror` with DOCKER_MIRROR_REPLICAS=3 on Azurite: every replica
on the same blob container, a cold warm through the mirror's port into it,
parallel pulls served by every replica with the upstream's digests, one
replica killed (`docker kill`) mid-pull while every pull completes, the
collection's stop taking every replica down at once, last use read from
every replica's log, the replicas serving the container read-only with the
upstream gone, and back to one replica (HAProxy and Redis go). The keeper's repairs do not depend on the backend:
tests/commands/test_replicas.py checks them on s3.
"""

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from mirror.services import lifecycle

from mirror.services import warm
from mirror.engine import containers, replicas
from mirror.host import usage
from mirror.model.modes import OFFLINE
from mirror.model.replicas import replica_names
from mirror.net.probes import answers
from support import azurite as az
from support.configs import image_list
from support.mirrors import Mirror
from support.replicas import free_port_block, haproxy_servers, pull, redis_cli, wait_for
from support.upstream import make_layer, push_image

IMAGES = [f"library/azrep{n}" for n in range(3)]


@pytest.fixture
def azurite(tmp_path):
    with az.service(tmp_path / "azurite") as service:
        yield service


@pytest.fixture
def replicated(tmp_path, docker_client, registry_image, azurite, hub):
    m = Mirror(tmp_path / "mirror", hub.url, DOCKER_MIRROR_REPLICAS=3,
               DOCKER_MIRROR_REPLICA_PORT_BASE=free_port_block(),
               **azurite.mirror_settings(f"dm{uuid.uuid4().hex[:10]}"))
    yield m
    m.remove(docker_client)


def states(client, names):
    return {name: client.containers.get(name).status for name in names}


def test_three_replicas_on_one_blob_container_behind_haproxy(tmp_path, replicated, docker_client, azurite, hub):
    m = replicated
    shared = make_layer(3_000_000, "azrep-shared")
    digests = {name: push_image(hub.url, name, "1", layers=[shared, make_layer(4_000_000, name)])
               for name in IMAGES}
    m.configure(DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, *(f"{n}:1" for n in IMAGES)))
    out = m.setup().stdout
    names = replica_names(m.prefix, "dockerhub", 3)
    stats_port = m.settings.replicas.stats_port
    shared_roles = [f"{m.prefix}-lb", f"{m.prefix}-redis"]
    assert states(docker_client, names + shared_roles) == dict.fromkeys(names + shared_roles, "running"), out

    # One blob container, one http secret, one Redis database, each replica on its own port.
    container = m.settings.storage.azure_container_for("dockerhub")
    configs = [yaml.safe_load((m.root / "config" / f"dockerhub-r{i}.yml").read_text()) for i in (1, 2, 3)]
    assert {c["storage"]["azure"]["container"] for c in configs} == {container}
    assert {c["storage"]["azure"]["realm"] for c in configs} == {azurite.realm}
    assert len({c["http"]["secret"] for c in configs}) == 1
    assert {c["storage"]["cache"]["blobdescriptor"] for c in configs} == {"redis"}
    assert [c["http"]["addr"] for c in configs] == \
        [f"127.0.0.1:{m.settings.replicas.port('dockerhub', i)}" for i in range(3)]
    assert container in azurite.containers()
    wait_for(lambda: all(s["status"] == "UP" for s in haproxy_servers(stats_port).values()), 20,
             "HAProxy to see three healthy replicas")

    # A cold warm through the mirror's port (HAProxy), into the container.
    assert warm.warm(m.settings, log=lambda _: None, client=docker_client) == []
    stored = azurite.list(container)
    for name in IMAGES:
        assert any(n.startswith(f"/docker/registry/v2/repositories/{name}/_layers/") for n in stored), name
    redis = docker_client.containers.get(f"{m.prefix}-redis")
    password = (m.root / "config/redis-password").read_text().strip()
    keys = redis_cli(redis, m.settings.replicas.redis_port, password, "-n", "0", "DBSIZE")
    assert int(keys) > 0   # the replicas filled the shared blob-descriptor cache

    # Parallel pulls from several clients: the upstream's digests, from every replica.
    before = {name: int(s["stot"]) for name, s in haproxy_servers(stats_port).items()}
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda n: (n, pull(m.url(), n, "1")[0]), IMAGES * 4))
    assert all(digest == digests[name] for name, digest in results)
    after = {name: int(s["stot"]) for name, s in haproxy_servers(stats_port).items()}
    assert all(after[n] > before[n] for n in names), (before, after)
    # Last use is read from every replica's log (merged in time order), not from one of them.
    assert lifecycle.ingest(m.settings, docker_client)["dockerhub"] >= 12

    # One replica killed mid-pull: every pull still completes with the right digests.
    victim = names[1]
    killed = threading.Event()
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(pull, m.url(), n, "1") for n in IMAGES * 6]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed.is_set():
            if int(haproxy_servers(stats_port)[victim]["scur"]) > 0:
                docker_client.containers.get(victim).kill()
                killed.set()
            time.sleep(0.01)
        results = [f.result() for f in futures]
    assert killed.is_set(), "the victim never had a connection open"
    assert [d for d, _ in results] == [digests[n] for n in IMAGES * 6]
    # (No keeper here: test_replicas.py has it bring a killed replica back.) Setup does.
    assert "docker.io: mirror restarted" in m.setup().stdout
    assert states(docker_client, names) == dict.fromkeys(names, "running")
    wait_for(lambda: haproxy_servers(stats_port)[victim]["status"] == "UP", 20, "the victim UP again")

    # The collection's stop: every replica at once (no replica writes the container mid-sweep).
    with containers.stopped(docker_client, m.settings, m.settings.upstreams[0]):
        assert set(states(docker_client, names).values()) == {"exited"}
        wait_for(lambda: all(s["status"] == "DOWN" for s in haproxy_servers(stats_port).values()), 10,
                 "HAProxy to see every replica down")
    assert set(states(docker_client, names).values()) == {"running"}
    wait_for(lambda: answers(m.settings.upstreams[0].endpoint), 20, "the mirror back")

    # The upstream gone: every replica serves the container read-only.
    hub.stop()
    assert "docker.io: offline mirror" in m.setup().stdout
    assert {docker_client.containers.get(n).labels["docker-mirror.mode"] for n in names} == {OFFLINE}
    wait_for(lambda: all(s["status"] == "UP" for s in haproxy_servers(stats_port).values()), 20,
             "HAProxy to see three offline replicas")
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda n: pull(m.url(), n, "1")[0], IMAGES * 2))
    assert results == [digests[n] for n in IMAGES * 2]

    # Back to one replica: HAProxy and Redis go, one container serves on the same port; the
    # pulls the replicas served just before are read from their logs before they go.
    before = time.time() - 1
    assert pull(m.url(), IMAGES[2], "1")[0] == digests[IMAGES[2]]
    m.configure(DOCKER_MIRROR_REPLICAS=1)
    out = m.setup().stdout
    assert f"removed {m.prefix}-lb" in out
    assert not docker_client.containers.list(all=True, filters={"label": replicas.LABEL_ROLE, "name": m.prefix})
    assert not [c for c in docker_client.containers.list(all=True, filters={"name": m.prefix}) if c.name in names]
    assert pull(m.url(), IMAGES[0], "1")[0] == digests[IMAGES[0]]
    assert usage.read_usage(m.root, "dockerhub").used[f"{IMAGES[2]}:1"] >= before

