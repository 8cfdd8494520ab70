"""Checking a user and password against the mirror's htpasswd file (bcrypt entries only, as
settings validated), for the status page, which sits behind the same users as the mirror.

bcrypt comes from the system's crypt(3) (libxcrypt on Debian and Ubuntu, `$2b$`/`$2y$`),
called through ctypes: Python's own `crypt` module is deprecated and gone in 3.13, and no
extra package is needed. crypt(3) returns a static buffer, hence the lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import hmac
import threading
from pathlib import Path

from ..errors import MirrorError

_LOCK = threading.Lock()
_CRYPT = None


def _crypt():
    global _CRYPT
    if _CRYPT is None:
        name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
        try:
            library = ctypes.CDLL(name)
        except OSError as err:
            raise MirrorError(f"cannot load the system's crypt library ({name}: {err}) to check "
                              "DOCKER_MIRROR_HTPASSWD_PATH's bcrypt entries") from None
        library.crypt.restype = ctypes.c_char_p
        library.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        _CRYPT = library.crypt
    return _CRYPT


def bcrypt_matches(password: str, digest: str) -> bool:
    with _LOCK:
        found = _crypt()(password.encode(), digest.encode())
    return found is not None and hmac.compare_digest(found, digest.encode())


class Users:
    """The users of one htpasswd file, read again when it changes; good answers are remembered
    (as a hash of user and password) because bcrypt is slow on purpose."""

    def __init__(self, path: str):
        self.path = Path(path)
        self._stamp = None
        self._entries: dict[str, str] = {}
        self._good: set[bytes] = set()

    def _load(self) -> None:
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            entries = {}
            for line in self.path.read_text(encoding="utf-8").splitlines():
                user, colon, digest = line.partition(":")
                if colon and user and not line.startswith("#"):
                    entries[user] = digest.strip()
            self._entries, self._good, self._stamp = entries, set(), stamp

    def check(self, user: str, password: str) -> bool:
        try:
            self._load()
        except OSError:
            return False
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        if key in self._good:
            return True
        digest = self._entries.get(user)
        if digest is None or not bcrypt_matches(password, digest):
            return False
        self._good.add(key)
        return True
