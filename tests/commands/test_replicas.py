"""Three replicas over SeaweedFS and Redis behind HAProxy, end to end (real processes on loopback).

`make docker-mirror` with DOCKER_MIRROR_REPLICAS=3 on the s3 backend: a cold
warm through the mirror's port, parallel pulls from several clients with the
upstream's digests, one replica killed (`docker kill`) mid-pull while every
pull completes (retrying as clients do), the keeper bringing it back on the
die event, and HAProxy sending it traffic again. The collection's stop takes
every replica down at once; new memory and pids limits re-create HAProxy and
Redis (and, for the pids, the replicas) with them; back to one replica,
HAProxy and Redis go.
"""

import json
import socket
import ssl
import stat
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import yaml

from mirror.services import lifecycle

from mirror.services import warm
from mirror.engine import containers, replicas
from mirror.host import credential, usage
from mirror.model.endpoint import debug_port
from mirror.model.replicas import replica_names
from mirror.net.probes import answers
from support.configs import image_list, with_status_page
from support.mirrors import Mirror, serve_status_page
from support.replicas import free_port_block, haproxy_servers, pull, redis_cli, wait_for
from support.upstream import make_layer, push_image

BUCKET = "replica-cache"
ACCESS_KEY = "replicatest"
SECRET_KEY = "replica-secret-key-never-shown"
IMAGES = [f"library/rep{n}" for n in range(3)]


@pytest.fixture
def replicated(tmp_path, docker_client, registry_image, seaweed, hub):
    base = free_port_block()
    m = Mirror(tmp_path / "mirror", hub.url, DOCKER_MIRROR_STORAGE_FILESYSTEM=False,
               DOCKER_MIRROR_STORAGE_S3=True, DOCKER_MIRROR_S3_ENDPOINT=seaweed.endpoint,
               DOCKER_MIRROR_S3_BUCKET=BUCKET, DOCKER_MIRROR_S3_ACCESS_KEY_ID=ACCESS_KEY,
               DOCKER_MIRROR_S3_SECRET_KEY=SECRET_KEY, DOCKER_MIRROR_S3_ROOT_DIRECTORY="/rep",
               DOCKER_MIRROR_REPLICAS=3, DOCKER_MIRROR_REPLICA_PORT_BASE=base)
    yield m
    m.remove(docker_client)


def states(client, names):
    return {name: client.containers.get(name).status for name in names}


def unauthenticated(port: int, command: bytes) -> bytes:
    """What Redis answers any local process that does not know the password."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command + b"\r\n")
        return sock.recv(4096)


def test_three_replicas_behind_haproxy(tmp_path, replicated, docker_client, seaweed, hub):
    m = replicated
    shared = make_layer(3_000_000, "rep-shared")
    digests = {name: push_image(hub.url, name, "1", layers=[shared, make_layer(6_000_000, name)])
               for name in IMAGES}
    m.configure(DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, *(f"{n}:1" for n in IMAGES)))
    out = m.setup().stdout
    names = replica_names(m.prefix, "dockerhub", 3)
    stats_port = m.settings.replicas.stats_port
    assert states(docker_client, names + [f"{m.prefix}-lb", f"{m.prefix}-redis"]) == \
        dict.fromkeys(names + [f"{m.prefix}-lb", f"{m.prefix}-redis"], "running"), out
    with pytest.raises(Exception):
        docker_client.containers.get(f"{m.prefix}-dockerhub")   # no single mirror any more
    lb = docker_client.containers.get(f"{m.prefix}-lb")
    assert lb.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert lb.attrs["HostConfig"]["NetworkMode"] == "host"
    assert lb.labels["docker-mirror.config"] == str(m.config)

    # One http secret, one Redis database, each replica on its own loopback port.
    configs = [yaml.safe_load((m.root / "config" / f"dockerhub-r{i}.yml").read_text()) for i in (1, 2, 3)]
    assert len({c["http"]["secret"] for c in configs}) == 1
    assert (m.root / "config/http-secret").read_text().strip() == configs[0]["http"]["secret"]
    assert {c["storage"]["cache"]["blobdescriptor"] for c in configs} == {"redis"}
    assert {c["redis"]["addr"] for c in configs} == {f"127.0.0.1:{m.settings.replicas.redis_port}"}
    assert [c["http"]["addr"] for c in configs] == \
        [f"127.0.0.1:{m.settings.replicas.port('dockerhub', i)}" for i in range(3)]
    assert not any(c["storage"]["delete"]["enabled"] for c in configs)
    redis = docker_client.containers.get(f"{m.prefix}-redis")
    # Redis takes only who knows the mirror's password: kept 0600, in the 0600 config files
    # of Redis and of every replica, never in a container's command line or environment.
    redis_port, secret_file = m.settings.replicas.redis_port, m.root / "config/redis-password"
    password = secret_file.read_text().strip()
    assert len(password) >= 32 and {c["redis"]["password"] for c in configs} == {password}
    for path in (secret_file, m.root / "config/redis.conf", *(m.root / "config").glob("dockerhub-r*.yml")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for container in (redis, lb, *(docker_client.containers.get(n) for n in names)):
        assert password not in json.dumps(container.attrs["Config"]), container.name
    assert unauthenticated(redis_port, b"FLUSHALL").startswith(b"-NOAUTH")
    assert unauthenticated(redis_port, b"AUTH not-the-password").startswith(b"-WRONGPASS")
    assert "NOAUTH" in redis.exec_run(["/usr/bin/redis-cli", "-p", str(redis_port), "DBSIZE"]).output.decode()
    policy = redis_cli(redis, redis_port, password, "CONFIG", "GET", "maxmemory-policy")
    assert "allkeys-lru" in policy
    # Bounded: Kconfig's defaults (DOCKER_MIRROR_HAPROXY/REDIS/REGISTRY_MEMORY_MB, _PIDS_LIMIT).
    limits = m.settings.resources
    for container, memory_mb in [(lb, limits.haproxy_memory_mb), (redis, limits.redis_memory_mb),
                                 *((docker_client.containers.get(n), limits.registry_memory_mb) for n in names)]:
        host = container.attrs["HostConfig"]
        assert (host["Memory"], host["PidsLimit"]) == (memory_mb << 20, limits.pids), container.name
    wait_for(lambda: all(s["status"] == "UP" for s in haproxy_servers(stats_port).values()), 20,
             "HAProxy to see three healthy replicas")

    # A cold warm through the mirror's port (HAProxy), into the bucket.
    assert warm.warm(m.settings, log=lambda _: None, client=docker_client) == []
    keys = redis_cli(redis, redis_port, password, "-n", "0", "DBSIZE")
    assert int(keys) > 0   # the replicas filled the shared blob-descriptor cache (with the password)
    for _, port in replicas.servers(m.settings)["dockerhub"]:   # the engine's patch 0005
        shown = requests.get(f"http://127.0.0.1:{debug_port(port)}/debug/vars", timeout=5).text
        assert "[redacted]" in shown and password not in shown

    # Parallel pulls from several clients: the upstream's digests, from every replica.
    before = {name: int(s["stot"]) for name, s in haproxy_servers(stats_port).items()}
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda n: (n, pull(m.url(), n, "1")[0]), IMAGES * 4))
    assert all(digest == digests[name] for name, digest in results)
    after = {name: int(s["stot"]) for name, s in haproxy_servers(stats_port).items()}
    assert all(after[n] > before[n] for n in names), (before, after)
    # Last use is read from every replica's log (merged in time order), not from one of them.
    assert lifecycle.ingest(m.settings, docker_client)["dockerhub"] >= 12

    # Redis down: the replicas fall back to the storage and still serve.
    redis.stop(timeout=1)
    assert pull(m.url(), IMAGES[1], "1", attempts=1)[0] == digests[IMAGES[1]]
    redis.start()   # (before the keeper runs: it would re-create it)

    # The keeper, as `make docker-mirror` starts it on a host without systemd (a background
    # process; Mirror turns it off in .config so that other tests can break things on purpose).
    m.configure(DOCKER_MIRROR_KEEPER=True)
    again = m.setup().stdout
    assert "keeper started in the background" in again
    assert "created" not in again and "restarted" not in again, again   # nothing changed: left alone
    assert secret_file.read_text().strip() == password   # the same password: Redis kept, not re-created
    assert docker_client.containers.get(redis.name).id == redis.id and password not in again
    keeper_log = m.root / "logs" / "keeper.log"
    wait_for(lambda: keeper_log.exists() and "keeping the mirror" in keeper_log.read_text(), 20,
             "the keeper to start")

    # One replica killed mid-pull: every pull still completes with the right digests.
    victim = names[1]
    killed = threading.Event()
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(pull, m.url(), n, "1") for n in IMAGES * 6]

        def kill_when_busy():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not killed.is_set():
                if int(haproxy_servers(stats_port)[victim]["scur"]) > 0:
                    docker_client.containers.get(victim).kill()
                    killed.set()
                    return
                time.sleep(0.01)

        kill_when_busy()
        results = [f.result() for f in futures]
    assert killed.is_set(), "the victim never had a connection open"
    assert [d for d, _ in results] == [digests[n] for n in IMAGES * 6]

    # It comes back: docker kill counts as a manual stop for the restart policy, so the
    # keeper does it, woken by the die event; then HAProxy sends it traffic again.
    wait_for(lambda: containers.mirror_container_named(docker_client, victim).state == "running", 60,
             f"the keeper to bring {victim} back")
    wait_for(lambda: "a mirror container died" in keeper_log.read_text(), 10, "the keeper's log line")
    wait_for(lambda: haproxy_servers(stats_port)[victim]["status"] == "UP", 20, "the victim UP again")
    before = int(haproxy_servers(stats_port)[victim]["stot"])
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda n: pull(m.url(), n, "1")[0], IMAGES * 3))
    assert results == [digests[n] for n in IMAGES * 3]
    assert int(haproxy_servers(stats_port)[victim]["stot"]) > before

    # HAProxy itself killed: the mirror's port is gone until the keeper, woken by the die
    # event (not its periodic check, minutes away), brings it back.
    lb = docker_client.containers.get(f"{m.prefix}-lb")
    lb.kill()
    wait_for(lambda: containers.mirror_container_named(docker_client, lb.name).state == "running", 30,
             "the keeper to bring HAProxy back")
    wait_for(lambda: answers(m.settings.upstreams[0].endpoint), 20, "the mirror answering through HAProxy")
    assert pull(m.url(), IMAGES[1], "1")[0] == digests[IMAGES[1]]

    # The status names every replica and the shared containers.
    status = m.run("status", "--json").stdout
    assert SECRET_KEY not in status and password not in status
    upstream = json.loads(status)["upstreams"][0]
    assert [r["name"] for r in upstream["replicas"]] == names
    assert all(r["state"] == "running" and r["answering"] for r in upstream["replicas"])
    text = m.run("status").stdout
    assert all(name in text for name in names) and f"{m.prefix}-lb" in text and password not in text
    page_settings = with_status_page(m.settings)
    server = serve_status_page(page_settings)
    try:
        for path in ("/", "/status.json"):
            answer = requests.get(f"http://127.0.0.1:{page_settings.observe.port}{path}", timeout=30)
            assert answer.status_code == 200 and password not in answer.text, path
    finally:
        server.shutdown()
        server.server_close()

    # The collection's stop: every replica at once (no replica writes the storage mid-sweep).
    with containers.stopped(docker_client, m.settings, m.settings.upstreams[0]):
        assert set(states(docker_client, names).values()) == {"exited"}
        wait_for(lambda: all(s["status"] == "DOWN" for s in haproxy_servers(stats_port).values()), 10,
                 "HAProxy to see every replica down")
        # The mirror's public port then gives a registry API 503, never the statistics page.
        for path in ("/v2/", "/stats"):
            answer = requests.get(m.url() + path, timeout=5)
            assert answer.status_code == 503 and answer.json()["errors"][0]["code"] == "UNAVAILABLE", path
        assert "Statistics Report" in requests.get(f"http://127.0.0.1:{stats_port}/stats", timeout=5).text
    assert set(states(docker_client, names).values()) == {"running"}

    # New limits in .config: `make docker-mirror` re-creates HAProxy and Redis with their
    # memory (Redis's maxmemory follows: its limit less 64 MiB), every container with the new
    # pids limit, and the mirror serves on.
    was = {name: docker_client.containers.get(name).id for name in names}
    pids = 512 if limits.pids != 512 else 640
    m.configure(DOCKER_MIRROR_HAPROXY_MEMORY_MB=160, DOCKER_MIRROR_REDIS_MEMORY_MB=256,
                DOCKER_MIRROR_CONTAINER_PIDS_LIMIT=pids)
    out = m.setup().stdout
    assert f"{m.prefix}-lb: load balancer recreated" in out and f"{m.prefix}-redis: Redis recreated" in out, out
    for name, memory_mb in ((f"{m.prefix}-lb", 160), (f"{m.prefix}-redis", 256),
                            *((n, limits.registry_memory_mb) for n in names)):
        host = docker_client.containers.get(name).attrs["HostConfig"]
        assert (host["Memory"], host["MemorySwap"], host["PidsLimit"]) == \
            (memory_mb << 20, memory_mb << 20, pids), name
    assert not {name: docker_client.containers.get(name).id for name in names}.items() & was.items()
    redis = docker_client.containers.get(f"{m.prefix}-redis")
    assert redis_cli(redis, redis_port, password, "CONFIG", "GET", "maxmemory").split()[-1] == str(192 << 20)
    wait_for(lambda: all(s["status"] == "UP" for s in haproxy_servers(stats_port).values()), 20,
             "HAProxy, re-created, to see three healthy replicas")
    assert pull(m.url(), IMAGES[1], "1")[0] == digests[IMAGES[1]]
    wait_for(lambda: int(redis_cli(redis, redis_port, password, "DBSIZE")) > 0, 10,
             "the replicas to fill the new Redis (with the same password)")

    # Back to one replica: HAProxy and Redis go, one container serves on the same port; the
    # pulls the replicas served just before are read from their logs before they go.
    wait_for(lambda: answers(m.settings.upstreams[0].endpoint), 20, "the mirror back")
    before = time.time() - 1
    assert pull(m.url(), IMAGES[2], "1")[0] == digests[IMAGES[2]]
    m.configure(DOCKER_MIRROR_REPLICAS=1)
    out = m.setup().stdout
    assert f"removed {m.prefix}-lb" in out
    assert not docker_client.containers.list(all=True, filters={"label": replicas.LABEL_ROLE,
                                                                "name": m.prefix})
    assert not [c for c in docker_client.containers.list(all=True, filters={"name": m.prefix})
                if c.name in names]
    assert pull(m.url(), IMAGES[0], "1")[0] == digests[IMAGES[0]]
    assert requests.get(m.url() + "/v2/", timeout=5).status_code == 200
    assert usage.read_usage(m.root, "dockerhub").used[f"{IMAGES[2]}:1"] >= before


def test_replicas_behind_haproxy_with_tls_and_htpasswd(tmp_path, docker_client, registry_image, seaweed, hub):
    """TLS passes through HAProxy (TCP mode) to replicas that each terminate it; the health
    check speaks TLS and takes htpasswd's 401 for healthy; the refresh's own user warms."""
    cert, key = tmp_path / "mirror.pem", tmp_path / "mirror.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=mirror.example", "-addext",
                    "subjectAltName=DNS:mirror.example", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    key.chmod(0o644)  # the registry container reads it as its own user
    users = tmp_path / "htpasswd"
    users.write_text(f"alice:{credential._bcrypt('wonderland')}\n")
    digest = push_image(hub.url, "library/secure", "1", layers=[make_layer(2_000_000, "secure")])
    m = Mirror(tmp_path / "mirror", hub.url, DOCKER_MIRROR_STORAGE_FILESYSTEM=False,
               DOCKER_MIRROR_STORAGE_S3=True, DOCKER_MIRROR_S3_ENDPOINT=seaweed.endpoint,
               DOCKER_MIRROR_S3_BUCKET=BUCKET, DOCKER_MIRROR_S3_ACCESS_KEY_ID=ACCESS_KEY,
               DOCKER_MIRROR_S3_SECRET_KEY=SECRET_KEY, DOCKER_MIRROR_S3_ROOT_DIRECTORY="/secure",
               DOCKER_MIRROR_REPLICAS=2, DOCKER_MIRROR_REPLICA_PORT_BASE=free_port_block(),
               DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_CERTIFICATE=str(cert), DOCKER_MIRROR_TLS_KEY=str(key),
               DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(users),
               DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "secure:1"))
    try:
        m.setup()
        stats_port = m.settings.replicas.stats_port
        wait_for(lambda: all(s["status"] == "UP" for s in haproxy_servers(stats_port).values()), 20,
                 "HAProxy to find both replicas healthy over TLS (401 without credentials)")
        url = f"https://127.0.0.1:{m.port}"
        assert requests.get(url + "/v2/", verify=False, timeout=5).status_code == 401
        assert requests.get(url + "/v2/", verify=False, auth=("alice", "wonderland"), timeout=5).status_code == 200
        for name, port in replicas.servers(m.settings)["dockerhub"]:   # each replica speaks TLS itself
            assert requests.get(f"https://127.0.0.1:{port}/v2/", verify=False, timeout=5).status_code == 401
        result = m.run("pull", check=False)
        assert result.returncode == 0 and "docker.io/library/secure:1: ok" in result.stdout, \
            result.stdout + result.stderr
        manifest = requests.get(f"{url}/v2/library/secure/manifests/1", verify=False, auth=("alice", "wonderland"),
                                headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
                                timeout=10)
        assert manifest.headers["Docker-Content-Digest"] == digest

        # The Redis password spoilt by hand: setup says so, makes a new one, and re-creates Redis
        # and both replicas with it (a replica with the old one would serve without its cache).
        secret_file = m.root / "config/redis-password"
        old_password = secret_file.read_text().strip()
        secret_file.write_text("short\n")
        redis_name = f"{m.prefix}-redis"
        before = {name: docker_client.containers.get(name).id
                  for name in [redis_name, *(n for n, _ in replicas.servers(m.settings)["dockerhub"])]}
        out = m.setup().stdout
        password = secret_file.read_text().strip()
        assert password != old_password and password not in out and old_password not in out
        assert "holds no usable password" in out, out
        assert all(docker_client.containers.get(name).id != was for name, was in before.items()), out
        redis = docker_client.containers.get(redis_name)
        redis_port = m.settings.replicas.redis_port
        assert redis_cli(redis, redis_port, password, "DBSIZE").strip() == "0"
        wait_for(lambda: all(s["status"] == "UP" for s in haproxy_servers(stats_port).values()), 20,
                 "HAProxy to find the re-created replicas healthy")
        result = m.run("pull", check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert int(redis_cli(redis, redis_port, password, "DBSIZE")) > 0   # they use the new password
        # Every replica stopped: HAProxy's own 503, over TLS with the mirror's certificate.
        with containers.stopped(docker_client, m.settings, m.settings.upstreams[0]):
            wait_for(lambda: all(s["status"] == "DOWN" for s in haproxy_servers(stats_port).values()), 10,
                     "HAProxy to see every replica down")
            answer = requests.get(url + "/v2/", verify=False, timeout=5)
            assert answer.status_code == 503 and answer.json()["errors"][0]["code"] == "UNAVAILABLE"
            served = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", m.port)))
            assert served == ssl.PEM_cert_to_DER_cert(cert.read_text())
        # Taken down: the Redis password goes with Redis (the cache stays).
        out = m.run("remove").stdout
        assert f"deleted {secret_file} (it holds the replicas' Redis password)" in out
        assert f"deleted {m.root / 'config/redis.conf'} (it holds" in out and password not in out
        assert not secret_file.exists() and not (m.root / "config/redis.conf").exists()
    finally:
        m.remove(docker_client)
