"""Replicas under test: a free block of loopback ports, HAProxy's statistics, pulls that retry,
waiting for what they do."""

from __future__ import annotations

import csv
import io
import json
import random
import time

import requests

from mirror.host.ports import port_is_free
from mirror.model.endpoint import debug_port
from mirror.model.manifests import blobs_of
from mirror.model.replicas import BLOCK
from mirror.net.registry_api import RegistryAPI


def wait_for(predicate, timeout: float, what: str):
    """What `predicate()` returns once it is true; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def free_port_block(tries: int = 200) -> int:
    """A base whose whole replica block (and the debug ports beside it) is free right now.

    Block and debug ports stay below the kernel's ephemeral range (32768 on), and apart
    from support.upstream.FREE_PORTS, where free_port() takes the mirrors' own ports and
    their debug ports: they cannot collide."""
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(20000, 32768 - 10000 - BLOCK)
        if all(port_is_free("127.0.0.1", p) and port_is_free("127.0.0.1", debug_port(p))
               for p in range(base, base + BLOCK)):
            return base
    raise RuntimeError("no free block of loopback ports")


def haproxy_servers(stats_port: int, backend: str = "dockerhub_replicas") -> dict[str, dict]:
    """HAProxy's own view of each replica: status (UP/DOWN), stot (sessions so far), scur.
    (Not the backends' last resort, `unavailable`, which is no replica.)"""
    text = requests.get(f"http://127.0.0.1:{stats_port}/stats;csv", timeout=5).text
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {row["svname"]: row for row in rows
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND", "unavailable")}


def pull(url: str, repository: str, tag: str, attempts: int = 8, **api_options) -> tuple[str, dict[str, str]]:
    """A client's pull (manifest, then every blob, sha256 checked), each request retried as
    docker does when a connection breaks; (manifest digest, {blob digest: its sha256}).
    `api_options`: RegistryAPI's (username, password, verify)."""
    # A client's pull counts as use (the product's own agent does not: services.lifecycle).
    api = RegistryAPI(url, user_agent="docker/test-client", **api_options)

    def retried(call):
        for attempt in range(attempts):
            try:
                return call()
            except Exception:  # noqa: BLE001 -- a reset mid-blob, a refused connection: retry
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    manifest = retried(lambda: api.get_manifest(repository, tag))
    blobs = {}
    for descriptor in blobs_of(json.loads(manifest.body)):
        retried(lambda: api.fetch_blob(repository, descriptor["digest"], sink=lambda _: None))
        blobs[descriptor["digest"]] = descriptor["digest"]  # fetch_blob checked the bytes
    return manifest.digest, blobs


def redis_cli(container, port: int, password: str, *args) -> str:
    """redis-cli in the Redis container, the password in its environment (not on a command line)."""
    return container.exec_run(["/usr/bin/redis-cli", "-p", str(port), *args],
                              environment={"REDISCLI_AUTH": password}).output.decode()
