"""How much memory, and how many processes, each container the product runs may take.

Without a limit, one misbehaving container takes the host: distribution 2.8
fetching a 300 MiB manifest from a hostile upstream peaked at 6.8 GiB. With
one, the kernel kills that container alone (its restart policy brings it
back) and the rest of the host is untouched. The defaults (Kconfig,
"Container resource limits") are sized from what docs/sizing.md measured,
with headroom; the limits cap swap too, so a container cannot page the
host to a halt instead.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    memory_mb: int
    pids: int

    @property
    def label(self) -> str:
        return f"memory={self.memory_mb}MiB,pids={self.pids}"

    def docker_options(self) -> dict:
        """The docker SDK's run() options (HostConfig Memory, MemorySwap, PidsLimit)."""
        memory = self.memory_mb * MIB
        # MemorySwap = Memory: no swap on top of the limit.
        return {"mem_limit": memory, "memswap_limit": memory, "pids_limit": self.pids}


@dataclass(frozen=True)
class Resources:
    """DOCKER_MIRROR_*_MEMORY_MB and DOCKER_MIRROR_CONTAINER_PIDS_LIMIT (defaults: Kconfig's)."""

    registry_memory_mb: int     # every registry container: mirror, replica, maintenance
    collect_memory_mb: int      # the one-shot garbage-collect (its mark set grows with the cache)
    haproxy_memory_mb: int
    redis_memory_mb: int
    pids: int                   # per container

    @property
    def registry(self) -> Limits:
        return Limits(self.registry_memory_mb, self.pids)

    @property
    def collect(self) -> Limits:
        return Limits(self.collect_memory_mb, self.pids)

    @property
    def haproxy(self) -> Limits:
        return Limits(self.haproxy_memory_mb, self.pids)

    @property
    def redis(self) -> Limits:
        return Limits(self.redis_memory_mb, self.pids)

    @property
    def redis_maxmemory(self) -> str:
        """Redis's own maxmemory: its container's limit less REDIS_OVERHEAD_MB, so that
        Redis evicts keys (allkeys-lru) before the kernel would kill it."""
        return f"{self.redis_memory_mb - REDIS_OVERHEAD_MB}mb"


# What Redis needs besides its data (buffers, fragmentation, the process), measured at
# a few MiB idle: 64 MiB of headroom. Kconfig's range keeps the limit above it.
REDIS_OVERHEAD_MB = 64
