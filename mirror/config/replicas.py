"""DOCKER_MIRROR_REPLICAS and the replicas' internal ports, read and checked.

Replicas share one storage, so they need one that every container reaches
alike: s3 or azure. Two registries on one filesystem directory would do
the same, but then the cache would stay on one disk, which is what replicas
are for, and `make docker-mirror-gc` (filesystem only) would have several
live writers to stop: refused, as a ConfigError naming the symbol.
"""

from __future__ import annotations

from ..model.endpoint import DEBUG_PORT_OFFSET, debug_port
from ..model.replicas import BLOCK, DEFAULT_BASE_OFFSET, Replicas
from .reader import Reader
from .storage import Storage

COUNT = "DOCKER_MIRROR_REPLICAS"
BASE = "DOCKER_MIRROR_REPLICA_PORT_BASE"


def from_config(read: Reader, storage: Storage, main_port: int, upstreams,
                taken: dict[int, str] | None = None) -> Replicas:
    """`taken`: other loopback ports of this mirror ({port: what}), which the block must miss."""
    count = read.int(COUNT)
    if count == 1:
        return Replicas()
    if storage.backend == "filesystem":
        read.fail(COUNT, count, "must be 1 with the filesystem storage backend: replicas share one "
                  "object storage (choose s3 or azure under 'Storage backend', or set 1)")
    configured = read.int(BASE)
    base = configured or main_port + DEFAULT_BASE_OFFSET
    how = f"defaults to DOCKER_MIRROR_PORT+{DEFAULT_BASE_OFFSET}={base}, and " if not configured else ""
    replicas = Replicas(count, base)
    if replicas.last_port > 65535:
        read.fail(BASE, configured, f"{how}the replicas' block of {BLOCK} internal ports "
                  f"{base}-{replicas.last_port} goes past 65535: set a base from 1024 to {65536 - BLOCK}")
    used: dict[int, str] = dict(taken or {})
    for upstream in upstreams:
        used[upstream.port] = f"port of the {upstream.key} mirror"
        used[upstream.endpoint.debug_port] = f"debug port of the {upstream.key} mirror"
    wanted = [(replicas.redis_port, "Redis port"), (replicas.stats_port, "HAProxy statistics port")]
    for upstream in upstreams:
        for index in range(count):
            port = replicas.port(upstream.key, index)
            what = f"replica {index + 1} of the {upstream.key} mirror"
            wanted += [(port, f"port of {what}"), (debug_port(port), f"debug port of {what}")]
    for port, what in wanted:
        if port in used:
            read.fail(BASE, configured, f"{how}the {what} would be {port}, already the {used[port]}: "
                      f"choose a base whose block {base}-{replicas.last_port} (and its debug ports, "
                      f"+/- {DEBUG_PORT_OFFSET}) misses the mirrors' ports")
        used[port] = what
    return replicas
