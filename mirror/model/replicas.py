"""Replicas: N registry containers per upstream behind one HAProxy, sharing one Redis (pure).

With DOCKER_MIRROR_REPLICAS=N>1 the mirror's own address (bind:port) is
HAProxy's; the registries listen on loopback only, on a block of internal
ports starting at `port_base`:

    replica i (0-based) of upstream u:  port_base + SLOTS * index(u) + i
    Redis (the shared blob-descriptor cache):  port_base + SLOTS * len(UPSTREAM_ORDER)
    HAProxy's statistics page:                 that + 1

index(u) is the upstream's place in the fixed order of all upstreams, not
among the enabled ones, so switching ghcr on does not move Docker Hub's
replicas. Each replica's debug/metrics port follows the usual rule
(model.endpoint.debug_port). The same index picks the upstream's Redis
database: the upstreams' storages differ, so their descriptors must not mix.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_REPLICAS = 16
SLOTS = MAX_REPLICAS          # ports per upstream in the block
UPSTREAM_ORDER = ("dockerhub", "ghcr", "quay", "k8s", "custom")
BLOCK = SLOTS * len(UPSTREAM_ORDER) + 2   # replicas, Redis, HAProxy stats
DEFAULT_BASE_OFFSET = 20000   # port_base 0 in .config: DOCKER_MIRROR_PORT + this
REPLICA_HOST = "127.0.0.1"    # replicas, Redis and the statistics page: loopback only

# The names of the shared containers, after the mirror's prefix.
LB_SUFFIX = "lb"
REDIS_SUFFIX = "redis"


@dataclass(frozen=True)
class Replicas:
    count: int = 1
    port_base: int = 0        # first port of the block; 0 with one replica (no block)

    @property
    def enabled(self) -> bool:
        return self.count > 1

    def port(self, key: str, index: int) -> int:
        """The loopback port of replica `index` (0-based) of upstream `key`."""
        if not 0 <= index < self.count:
            raise ValueError(f"replica {index} of {self.count}")
        return self.port_base + SLOTS * UPSTREAM_ORDER.index(key) + index

    @staticmethod
    def redis_db(key: str) -> int:
        return UPSTREAM_ORDER.index(key)

    @property
    def redis_port(self) -> int:
        return self.port_base + SLOTS * len(UPSTREAM_ORDER)

    @property
    def stats_port(self) -> int:
        return self.redis_port + 1

    @property
    def last_port(self) -> int:
        return self.port_base + BLOCK - 1


def replica_name(prefix: str, key: str, index: int) -> str:
    """The container of replica `index` (0-based): PREFIX-KEY-r1 ... PREFIX-KEY-rN."""
    return f"{prefix}-{key}-r{index + 1}"


def replica_names(prefix: str, key: str, count: int) -> list[str]:
    return [replica_name(prefix, key, i) for i in range(count)]
