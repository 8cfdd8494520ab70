"""A forced, blocking refresh that warms more than the refresh does (`python3 -m mirror pull`).

The images of a list file and of a scan join Kconfig's, and with `archive`
each image is saved for offline hosts afterwards, all inside one refresh run
(its lock, its log), printing as it goes.
"""

from __future__ import annotations

import os

from . import warm
from ..config.dotconfig import DotConfig
from ..config.image_lists import read_list_file
from ..config.settings import from_dotconfig
from . import refresh, scan as scanning
from .archive import archive_images


def pull(config: DotConfig, client, *, list_file: str | None = None, scan: bool = False,
         scan_dirs=(), archive: bool = False, prune: bool = False, wait: bool = True,
         echo=print) -> int:
    loaded = from_dotconfig(config)
    extra, errors = [], []
    if list_file:
        extra, errors = read_list_file(os.path.abspath(list_file))
    if scan:
        extra += scanning.mirrored(scanning.scan(config, list(scan_dirs)), loaded)

    def work(settings_, log, client_) -> list[str]:
        failed = warm.warm(settings_, log, client_, extra=extra, extra_errors=errors)
        if archive:
            failed += archive_images(settings_, client_, log=log, prune=prune, extra=extra)
        return list(dict.fromkeys(failed))

    return refresh.run(loaded, client, wait=wait, echo=echo, warm=work)

