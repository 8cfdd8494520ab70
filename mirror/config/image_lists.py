"""The images to keep warm: from the settings, the extra list file, and the caller."""

from __future__ import annotations


from ..errors import InvalidReference
from ..model import images
from ..model.targets import Target, targets
from .settings import Settings


MAX_LIST_BYTES = 16 << 20   # a list of a hundred thousand images is well under this
MAX_LINE = 512              # characters: longer than any valid reference
SHOWN = 60                  # characters of a bad line echoed back


def _shown(text: str) -> str:
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "...")


def read_list_file(path: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(reference, 'file:line') pairs and error lines; '#' starts a comment.

    Bad bytes spoil their line, never the file: a line that is not UTF-8 or
    too long is an error naming file, line and (shortened) content, and the
    other lines are still read. A UTF-8 byte order mark (Windows editors
    write one) is dropped.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_LIST_BYTES + 1)
    except OSError as err:
        return [], [f"{path}: cannot read the image list ({err.strerror})"]
    if len(data) > MAX_LIST_BYTES:
        return [], [f"{path}: image list over {MAX_LIST_BYTES} bytes: not read"]
    data = data.removeprefix(b"\xef\xbb\xbf")
    found, errors = [], []
    for number, raw in enumerate(data.splitlines(), start=1):
        # Cut the comment off first: '#' is one byte in UTF-8 and never inside a
        # multi-byte character, and what a comment holds does not matter.
        raw = raw.split(b"#", 1)[0]
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            errors.append(f"{path}:{number}: not UTF-8 (byte 0x{raw[err.start]:02x} at column "
                          f"{err.start + 1}): {_shown(raw.decode('utf-8', 'replace'))}")
            continue
        if not text:
            continue
        if len(text) > MAX_LINE:
            errors.append(f"{path}:{number}: a line of {len(text)} characters (at most {MAX_LINE}): "
                          f"{_shown(text)}")
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
