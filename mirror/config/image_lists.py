"""The images to keep warm: from the settings, the extra list file, and the caller."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidReference
from ..model import images
from ..model.targets import Target, targets
from .settings import Settings


def read_list_file(path: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(reference, 'file:line') pairs and error lines; '#' starts a comment."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        return [], [f"{path}: cannot read the image list ({err.strerror})"]
    found, errors = [], []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            images.parse(text)
            found.append((text, f"{path}:{number}"))
        except InvalidReference as err:
            errors.append(f"{path}:{number}: {err}")
    return found, errors


def wanted_images(settings: Settings, extra: list[tuple[str, str]] = ()) -> tuple[list[Target], list[str]]:
    """Every image to keep warm (Kconfig, the extra list file, `extra`), and the error lines."""
    listed = [(ref, "Kconfig") for ref in settings.warm_images]
    errors: list[str] = []
    if settings.extra_image_list:
        found, errors = read_list_file(settings.extra_image_list)
        listed += found
    found_targets, target_errors = targets(settings, [*listed, *extra])
    return found_targets, errors + target_errors
