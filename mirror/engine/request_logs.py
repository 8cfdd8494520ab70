"""The registries' request logs (their access log on stdout, with Docker's timestamps).

One upstream is served by one container, or with DOCKER_MIRROR_REPLICAS by
several: their logs are merged in time order, so that the readers (last use
in services.lifecycle, traffic in services.observe) keep one cursor per
upstream, whichever replica served a request.
"""

from __future__ import annotations

import time

from ..model.settings import Settings, Upstream
from .client import docker_errors, find_container
from .containers import LABEL_CONFIG, LABEL_UPSTREAM, config_of, container_names


def _stamp(line: bytes) -> tuple[str, str]:
    # Docker writes RFC 3339 with trailing zeros of the fraction dropped: compare padded.
    whole, _, fraction = line.split(b" ", 1)[0].decode(errors="replace").rstrip("Z").partition(".")
    return whole, fraction.ljust(9, "0")


def _serving(client, settings: Settings, upstream: Upstream) -> list:
    """The containers that serve or served `upstream` for this .config: by label, whatever
    their names (the single mirror and replicas alike, so that a switch between the two
    loses no log), and by the names it has now (containers made before the labels)."""
    found = {}
    with docker_errors("list the mirror containers"):
        for container in client.containers.list(all=True, ignore_removed=True, filters={"label": [
                f"{LABEL_UPSTREAM}={upstream.key}", f"{LABEL_CONFIG}={config_of(settings)}"]}):
            found[container.name] = container
    for name in container_names(settings, upstream):
        if name not in found:
            container = find_container(client, name)
            if container is not None:
                found[name] = container
    return list(found.values())


def request_log(client, settings: Settings, upstream: Upstream, since: int = 0) -> bytes | None:
    """The log of the upstream's container(s) from `since` (epoch seconds; 0: all), timestamps
    first; None when no container exists. Raises DockerError."""
    logs = []
    # One end for every replica's log: read one after another up to "now" each, a line
    # replica A logs after it was read, older than B's last, would fall behind the cursor.
    until = time.time()
    for container in _serving(client, settings, upstream):
        with docker_errors(f"read the log of {container.name}"):
            logs.append(container.logs(stdout=True, stderr=True, timestamps=True, until=until,
                                       **({"since": since} if since > 0 else {})))
    if len(logs) <= 1:
        return logs[0] if logs else None
    return b"\n".join(sorted((line for text in logs for line in text.splitlines()), key=_stamp))
