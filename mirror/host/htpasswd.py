"""Checking a user and password against the mirror's htpasswd file (bcrypt entries only, as
settings validated), for the status page, which sits behind the same users as the mirror.

bcrypt is pyca's `bcrypt` package: it reads every spelling the file may hold (`$2y$` from
Apache's htpasswd -B, `$2b$` from crypt(3) and from the product itself, `$2a$`). bcrypt
uses at most 72 bytes of a password: htpasswd -B, crypt(3) and the registry's Go bcrypt
ignore the rest, so a longer password is cut to 72 bytes here too and is checked as the
registry checks it (bcrypt 5 refuses to cut it itself, with a ValueError).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import bcrypt

MAX_BYTES = 72  # of a password that bcrypt uses


def bcrypt_matches(password: str, digest: str) -> bool:
    """`password` is the one of `digest`; False for a digest bcrypt cannot read."""
    try:
        return bcrypt.checkpw(password.encode()[:MAX_BYTES], digest.encode())
    except ValueError:  # not a bcrypt digest ("Invalid salt"): a file edited since settings read it
        return False


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
