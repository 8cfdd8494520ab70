"""Which registry image a mirror runs, as registry_image.describe finds it.

A module of its own so that what reads it (storage_drivers, which
registry_image also imports to label what it builds; containers) imports it
one way, with no circle back to registry_image.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RegistryImage:
    ref: str
    image_id: str
    major: int  # 2 or 3
    config_path: str  # where the image reads its config
    built_offline: bool
