"""A replica killed while it streams a blob to the warm: the warm tries the blob again through
HAProxy, a healthy replica serves it, and the image completes (3 replicas on SeaweedFS, the
upstream behind a slow shared link so that the kill lands mid-body; real processes on loopback)."""

import hashlib
import re
import subprocess
import threading

from mirror.config import image_lists
from mirror.model.replicas import replica_names
from mirror.services import warm_engine
from support.configs import image_list
from support.link import SharedLink
from support.mirrors import Mirror
from support.replicas import free_port_block, haproxy_servers, wait_for
from support.upstream import make_layer, push_image

BUCKET = "killed-mid-warm"
ACCESS_KEY, SECRET_KEY = "killtest", "kill-test-secret-key"
MB = 1_000_000


def socket_owner(address: tuple[str, int]) -> int | None:
    """The pid of the process that holds the TCP socket bound to `address` (ss, iproute2)."""
    listed = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{address[1]} )"],
                            capture_output=True, text=True, timeout=10).stdout
    found = re.search(r"pid=(\d+)", listed)
    return int(found.group(1)) if found else None


def test_a_replica_killed_mid_blob_is_survived_by_a_retry(tmp_path, docker_client, registry_image, seaweed, hub):
    big = make_layer(6 * MB, "killed-mid-warm")
    push_image(hub.url, "library/survivor", "1", layers=[big])
    big_digest = "sha256:" + hashlib.sha256(big).hexdigest()
    with SharedLink(("127.0.0.1", hub.port), rate_bytes=3 * MB) as link:
        m = Mirror(tmp_path / "mirror", link.url, DOCKER_MIRROR_STORAGE_FILESYSTEM=False,
                   DOCKER_MIRROR_STORAGE_S3=True, DOCKER_MIRROR_S3_ENDPOINT=seaweed.endpoint,
                   DOCKER_MIRROR_S3_BUCKET=BUCKET, DOCKER_MIRROR_S3_ACCESS_KEY_ID=ACCESS_KEY,
                   DOCKER_MIRROR_S3_SECRET_KEY=SECRET_KEY, DOCKER_MIRROR_REPLICAS=3,
                   DOCKER_MIRROR_REPLICA_PORT_BASE=free_port_block(),
                   DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "survivor:1"))
        try:
            m.setup()
            stats_port = m.settings.replicas.stats_port
            wait_for(lambda: all(s["status"] == "UP" for s in haproxy_servers(stats_port).values()), 20,
                     "HAProxy to see three healthy replicas")
            wanted = image_lists.wanted_images(m.settings)[0]
            lines = []
            engine = warm_engine.Engine(m.settings, log=lines.append, fetch_once=True, stall_timeout=10)
            link.reset()
            results = {}
            runner = threading.Thread(target=lambda: results.update(run=engine.run(wanted)))
            runner.start()
            replicas = {docker_client.containers.get(name).attrs["State"]["Pid"]: name
                        for name in replica_names(m.prefix, "dockerhub", 3)}

            def streaming_replica():
                # The replica whose upstream fetch of the big blob is a megabyte in: its
                # connection to the link is told by the process on the other end.
                found = link.answering(big_digest)
                if found is None or found[0].body_bytes < MB:
                    return None
                return replicas.get(socket_owner(found[1]))

            victim = wait_for(streaming_replica, 20, "the big blob to stream through one replica")
            assert victim in replica_names(m.prefix, "dockerhub", 3)
            docker_client.containers.get(victim).kill()
            runner.join(60)
            assert not runner.is_alive()
            [result] = results["run"]
            assert result.ok, (result.error, lines)
            assert any("transfer broke" in line and "trying again" in line for line in lines), lines
            assert m.settings.storage.backend == "s3"
            assert link.counts().blob_gets().get(big_digest), "the blob never crossed the link"
        finally:
            m.remove(docker_client)
