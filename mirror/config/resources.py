"""The containers' resource limits (Kconfig "Container resource limits"), read and checked.

Reader.int checks each value against its Kconfig range, and a hidden symbol
(HAProxy and Redis without replicas) reads as its Kconfig default.
"""

from __future__ import annotations

from ..model.resources import Resources
from .reader import Reader


def from_config(read: Reader) -> Resources:
    return Resources(
        registry_memory_mb=read.int("DOCKER_MIRROR_REGISTRY_MEMORY_MB"),
        collect_memory_mb=read.int("DOCKER_MIRROR_GC_MEMORY_MB"),
        haproxy_memory_mb=read.int("DOCKER_MIRROR_HAPROXY_MEMORY_MB"),
        redis_memory_mb=read.int("DOCKER_MIRROR_REDIS_MEMORY_MB"),
        pids=read.int("DOCKER_MIRROR_CONTAINER_PIDS_LIMIT"))
