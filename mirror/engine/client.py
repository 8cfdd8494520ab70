"""The connection to the Docker engine, and the one translation of its errors.

Every docker SDK call of the package runs inside `docker_errors(what)`,
so a refusal or a broken connection reaches the user as a DockerError
naming what was being done, never as a docker or requests traceback.
"""

from __future__ import annotations

from contextlib import contextmanager

import docker
import docker.errors
import requests

from ..errors import DockerError
from ..net.registry_api import USER_AGENT

CLIENT_TIMEOUT = 30  # seconds for one engine API call


def short(err: Exception) -> str:
    """The engine's own explanation of an error, without the HTTP wrapping."""
    return getattr(err, "explanation", None) or str(err)


@contextmanager
def docker_errors(what: str):
    """Turn any error of the engine or of the connection to it into DockerError."""
    try:
        yield
    except (docker.errors.DockerException, requests.RequestException) as err:
        raise DockerError(f"cannot {what}: {short(err)}") from err


def connect() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=CLIENT_TIMEOUT)
        # dockerd passes its client's agent on to registries (`UpstreamClient(docker-mirror/1)`): a
        # pull the product asks dockerd for is its own in the mirror's log, not a client's use.
        client.api.headers["User-Agent"] = USER_AGENT   # (from_env takes no user_agent)
        client.ping()
        return client
    except (docker.errors.DockerException, requests.RequestException) as err:
        raise DockerError(
            f"cannot reach the Docker engine ({err}); start it with 'make deps' "
            "(or 'scripts/start-docker-engine.sh')") from None


def find_container(client, name: str):
    """The container called `name`, or None when there is none."""
    with docker_errors(f"look up container {name}"):
        try:
            return client.containers.get(name)
        except docker.errors.NotFound:
            return None
