"""The password of the replicas' shared Redis (DOCKER_MIRROR_REPLICAS > 1).

Redis listens on loopback only, but loopback is every local user's: without
a password any process on the host could rewrite a digest's blob descriptor
or flush the cache. The password is generated once per mirror and kept in
`config/redis-password` (0600): the same password on every run keeps
redis.conf and the replicas' configs, so their containers' hashes, unchanged.
A password deleted by hand is made anew, and both Redis and the replicas get
it: it is part of the text of both configs, which their hashes cover.

Its characters are those of secrets.token_urlsafe, checked on every read:
it goes unquoted into redis.conf and into a YAML scalar, and a file edited by
hand must not inject a directive there.
"""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

from ..errors import HostError
from ..render import REDIS_PASSWORD
from .files import atomic_write
from .layout import Layout


def secret_path(layout: Layout) -> Path:
    return layout.config_dir / "redis-password"


def read(layout: Layout) -> str | None:
    """The kept password, or None when there is none (yet) or it is not one of ours."""
    try:
        text = secret_path(layout).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if REDIS_PASSWORD.fullmatch(text) else None


def unusable(layout: Layout) -> bool:
    """A password file is there, but not one ensure() would keep (edited by hand)."""
    return secret_path(layout).exists() and read(layout) is None


def ensure(layout: Layout) -> str:
    """The mirror's Redis password, made (0600) when there is none or it is unusable."""
    path = secret_path(layout)
    kept = read(layout)
    try:
        if kept is None:
            kept = secrets.token_urlsafe(32)
            atomic_write(path, kept + "\n", mode=0o600)
        elif stat.S_IMODE(path.stat().st_mode) != 0o600:
            path.chmod(0o600)   # left readable by hand: others could connect with it
    except OSError as err:
        raise HostError(f"cannot keep the replicas' Redis password in {path}: "
                        f"{err.strerror or type(err).__name__}") from None
    return kept


def forget(layout: Layout) -> list[Path]:
    """Delete the password and the redis.conf holding it (the mirror taken down); what went."""
    gone = []
    for path in (secret_path(layout), layout.config_dir / "redis.conf"):
        try:
            path.unlink()
            gone.append(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise HostError(f"cannot delete {path}: {err.strerror or type(err).__name__}") from None
    return gone
