"""DOCKER_MIRROR_CLIENT_USERNAME/_PASSWORD: the htpasswd user clients are given.

Read here, checked for shape; whether the password is that user's in the
htpasswd file is checked by `docker-mirror-clients` before any client gets it
(bcrypt, checked as the registry checks it: mirror.host.htpasswd).
"""

from __future__ import annotations

from .reader import Reader


def from_config(read: Reader) -> tuple[str, str] | None:
    user = read.str("DOCKER_MIRROR_CLIENT_USERNAME")
    if not user:
        return None
    if ":" in user or not user.isprintable() or any(c.isspace() for c in user):
        read.fail("DOCKER_MIRROR_CLIENT_USERNAME", user,
                  "must be a user of the htpasswd file: no ':', spaces or control characters")
    password = read.str("DOCKER_MIRROR_CLIENT_PASSWORD")
    if not password or not password.isprintable():
        read.fail("DOCKER_MIRROR_CLIENT_PASSWORD", password,
                  "must be the printable, non-empty password of DOCKER_MIRROR_CLIENT_USERNAME")
    return user, password
