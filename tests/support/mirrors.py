"""A mirror under test: its .config, its upstreams, and the CLI calls on it."""

import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

import docker.errors

from mirror.model.manifests import blobs_of
from mirror.net.registry_api import RegistryAPI
from mirror.services import install, observe_serve
from mirror.config import settings as settings_mod
from support.configs import QUIET_PROBES, run_mirror, write_config
from support.upstream import free_port


class Mirror:
    """Containers are named dmtest-<random>-<upstream>, so several can coexist."""

    def __init__(self, tmp: Path, hub_url: str, ghcr_url: str | None = None, **overrides):
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.hub_url, self.ghcr_url = hub_url, ghcr_url
        self.prefix = f"dmtest-{uuid.uuid4().hex[:8]}"
        self.port, self.ghcr_port = free_port(), free_port()
        self.config = tmp / ".config"
        self.overrides = overrides
        self.configure()

    @property
    def root(self) -> Path:
        return self.tmp / "mirror"

    def configure(self, **overrides):
        self.overrides.update(overrides)
        ghcr = dict(DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_GHCR_PORT=self.ghcr_port,
                    DOCKER_MIRROR_GHCR_REMOTE_URL=self.ghcr_url) if self.ghcr_url else {}
        values = dict(DOCKER_MIRROR_PATH=str(self.root), DOCKER_MIRROR_PORT=self.port,
                      DOCKER_MIRROR_CONTAINER_PREFIX=self.prefix,
                      DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=self.hub_url, DOCKER_MIRROR_REFRESH=False,
                      # A keeper would repair on its own what these tests break on purpose to
                      # see `make docker-mirror` repair it; tests/commands/test_keeper.py turns it on.
                      DOCKER_MIRROR_KEEPER=False,
                      DOCKER_MIRROR_IMAGE_MINIO=False, DOCKER_MIRROR_IMAGE_MILVUS=False,
                      DOCKER_MIRROR_IMAGE_REGISTRY=False, **ghcr)
        values.update(self.overrides)
        write_config(self.config, olddefconfig=True, **values)
        self.settings = settings_mod.load(self.config)

    def run(self, *args, check=True, **kwargs):
        return run_mirror(*args, config=self.config, env=QUIET_PROBES, check=check, **kwargs)

    def setup(self, check=True):
        return self.run("docker-mirror", check=check)

    def container(self, client, key="dockerhub"):
        return client.containers.get(f"{self.prefix}-{key}")

    def url(self, port=None):
        return f"http://127.0.0.1:{port or self.port}"

    def storage(self, key="dockerhub") -> Path:
        return self.root / "registry" / key

    def remove(self, client):
        """The product's own way out (keeper first), then whatever a failed test left behind."""
        self.run("remove", check=False)
        for container in client.containers.list(all=True, filters={"name": self.prefix}):
            container.remove(force=True, v=True)


@contextmanager
def mirror_factory(client, new_dir):
    """`make(hub_url, name, **overrides)` starts a Mirror in `new_dir(name)`; all go at exit."""
    made = []

    def make(hub_url, name="m", **overrides):
        m = Mirror(new_dir(name), hub_url, **overrides)
        install.start_mirrors(m.settings, client, log=lambda _: None)
        made.append(m)
        return m

    try:
        yield make
    finally:
        for m in made:
            m.remove(client)


def docker_pull(docker_client, m: Mirror, ref: str) -> str:
    """A client's real `docker pull` through the mirror (a use of the image, to the lifecycle);
    its digest. The image is removed locally after."""
    image = docker_client.images.pull(f"127.0.0.1:{m.port}/{ref}")
    digest = image.attrs["RepoDigests"][0].split("@")[1]
    try:  # the engine is shared: another test's pull of the same content may remove it first
        docker_client.images.remove(image.id, force=True)
    except docker.errors.ImageNotFound:
        pass
    return digest


def pulls_offline(m: Mirror, repository: str, reference: str) -> str:
    """The image is served whole by the mirror (manifest and every blob, sha256 checked), with
    no retry; its manifest digest."""
    api = RegistryAPI(m.url(), retries=0)
    manifest = api.get_manifest(repository, reference)
    for blob in blobs_of(manifest.json):
        api.fetch_blob(repository, blob["digest"])
    return manifest.digest


def serve_status_page(settings):
    """The status page service's server for `settings`, serving in a thread (shut it down after)."""
    server = observe_serve.make_server(settings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
