"""Which configuration files hold a secret, and keeping those 0600 whoever wrote them.

A secret is the value of a *_PASSWORD, *_ACCOUNT_KEY or *_SECRET_KEY symbol, or a URL with
user:password@ in it (a remote URL typed with its credentials). kconfiglib
rewrites .config with the umask's mode on every `make menuconfig` or
`olddefconfig`, and keeps the previous one as .config.old, so the mode of
both is put right after each such tool (and by every `make docker-mirror`,
whoever wrote them), not only when this package writes the file itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from . import dotconfig, settings

# scheme://user:password@ : the password part is the secret
_URL_CREDENTIALS = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*:[^/@\s]*@")


def is_secret_value(name: str, value: object) -> bool:
    if not isinstance(value, str) or not value:
        return False
    return settings.is_secret(name) or _URL_CREDENTIALS.match(value) is not None


def holds_secret(config: dotconfig.DotConfig) -> bool:
    return any(is_secret_value(name, entry.value) for name, entry in config.entries.items())


def protect(path: str | Path) -> bool:
    """Make `path` and kconfiglib's backup of it (`path`.old, written by every save of
    menuconfig, oldconfig, olddefconfig: the previous .config, passwords and all) 0600
    when they hold a secret; True when `path` does."""
    protect_file(f"{path}.old")
    return protect_file(path)


def protect_file(path: str | Path) -> bool:
    """Make `path` 0600 when it is a .config (or defconfig) holding a secret; True when it
    does. An absent, unreadable or malformed file is left to the reader that will name its fault."""
    if not os.path.isfile(path):
        return False
    try:
        config = dotconfig.load(path)
    except Exception:  # noqa: BLE001 - any fault here is reported by the next real read
        return False
    if not holds_secret(config):
        return False
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)
    return True
