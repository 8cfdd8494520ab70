"""Waiting on the engine's event stream (the keeper's wake-up call)."""

from __future__ import annotations

import time

import docker.errors
import requests

from .containers import LABEL_CONFIG


def wait_for_death(client, names: set[str], since: float, timeout: float) -> str:
    """Block until a container of `names` dies ('died'), the engine goes away ('engine')
    or `timeout` seconds pass ('interval'). `since`: deaths from that time on count,
    so a container that died while the caller was busy is not missed."""
    until = time.time() + timeout
    try:
        for event in client.events(decode=True, since=int(since), until=int(until) + 1,
                                   # every lasting container of a mirror (registries, HAProxy,
                                   # Redis) carries its .config's label; the names pick this one's
                                   filters={"type": "container", "event": "die", "label": LABEL_CONFIG}):
            if event.get("Actor", {}).get("Attributes", {}).get("name") in names:
                return "died"
    except (docker.errors.DockerException, requests.RequestException):
        return "engine"
    # The event stream also ends when the engine shuts down.
    return "interval" if time.time() >= until else "engine"
