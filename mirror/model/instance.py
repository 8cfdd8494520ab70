"""The names one mirror's host-wide files take: its systemd units and its NFS exports file.

Two configurations on one host (two checkouts, each its own container
prefix) must not overwrite each other's units, so every name derives from
DOCKER_MIRROR_CONTAINER_PREFIX, which already tells their containers apart.
The default prefix keeps the names earlier versions installed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceNames:
    keeper_unit: str      # the keeper (or, keeper off, the one-shot boot unit)
    refresh_unit: str     # one refresh run
    refresh_timer: str    # starts refresh_unit on the schedule
    observe_unit: str     # the metrics and status page
    exports_file: str     # under /etc/exports.d

    @classmethod
    def of(cls, prefix: str) -> "InstanceNames":
        return cls(keeper_unit=f"{prefix}.service", refresh_unit=f"{prefix}-update.service",
                   refresh_timer=f"{prefix}-update.timer", observe_unit=f"{prefix}-observe.service",
                   exports_file=f"{prefix}.exports")


def timer_of(service: str) -> str:
    """The timer that starts `service` (systemd's convention: same stem)."""
    return service.removesuffix(".service") + ".timer"
