"""The names one mirror's host-wide files take: its systemd units and its NFS exports file.

Two configurations on one host (two checkouts, each its own container
prefix) must not overwrite each other's units, so every name derives from
DOCKER_MIRROR_CONTAINER_PREFIX, which already tells their containers apart,
and the name of the thing each runs (keeper, update, observe) follows it.
Earlier versions named the keeper's unit PREFIX.service and the refresh's
PREFIX-update.service and .timer: `make docker-mirror` stops, disables and
removes those files (the product's, naming this .config: services.install)
when it writes the new ones.
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
        return cls(keeper_unit=f"{prefix}-keeper.service", refresh_unit=f"{prefix}-refresh.service",
                   refresh_timer=f"{prefix}-refresh.timer", observe_unit=f"{prefix}-observe.service",
                   exports_file=f"{prefix}.exports")


def timer_of(service: str) -> str:
    """The timer that starts `service` (systemd's convention: same stem)."""
    return service.removesuffix(".service") + ".timer"
