"""The product's own credential for a mirror behind htpasswd.

With DOCKER_MIRROR_HTPASSWD on, the mirrors answer 401 to anyone without a
user of that file, the refresh, `make docker-mirror-pull`, `--archive` and
`restore` included. Rather than ask for a person's password, the product
keeps a user of its own: `config/mirror-credential` (0600) holds its name,
a random password and that password's bcrypt hash; the registry reads
`config/htpasswd` (0600), the user's file with that one entry added. The
user's file is never written to.

The hash is kept beside the password so that the merged file only changes
when the user's file does: a new salt per start would change the container
spec's hash and restart every mirror. Hashes are made by pyca's bcrypt
(`$2b$`, as the host's crypt(3) made them before: a kept file stays valid).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from ..model.settings import Settings
from ..errors import HostError
from .files import atomic_write
from .htpasswd import MAX_BYTES as _MAX
from .layout import Layout

USER = "docker-mirror"
BCRYPT_COST = 10


@dataclass(frozen=True)
class Credential:
    user: str
    password: str = field(repr=False)
    digest: str = field(repr=False)

    @property
    def auth(self) -> tuple[str, str]:
        return self.user, self.password


def credential_path(layout: Layout) -> Path:
    return layout.config_dir / "mirror-credential"


def merged_htpasswd_path(layout: Layout) -> Path:
    return layout.config_dir / "htpasswd"


def _bcrypt(password: str) -> str:
    """A `$2b$` bcrypt hash of `password`, as the registry and mirror.host.htpasswd check them."""
    try:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
    except ValueError:  # the product's passwords have 32 bytes
        raise HostError(f"cannot make an htpasswd entry: the password has {len(password.encode())} "
                        f"bytes, bcrypt takes at most {_MAX}") from None


def read(layout: Layout) -> Credential | None:
    """The kept credential, or None when there is none (yet) or it is unreadable."""
    try:
        user, password, digest = credential_path(layout).read_text(encoding="utf-8").split("\n")[:3]
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if user != USER or not password or not digest.startswith("$2"):
        return None
    return Credential(user, password, digest)


def of(settings: Settings) -> tuple[str, str] | None:
    """(user, password) for the mirrors of `settings`, None when they take anyone."""
    if not settings.htpasswd_path:
        return None
    found = read(Layout.of(settings))
    return found.auth if found else None


def ensure(settings: Settings, layout: Layout) -> Path | None:
    """Keep the credential and the merged htpasswd file up to date; the file's path,
    or None without htpasswd. Files holding the password or hashes are 0600."""
    if not settings.htpasswd_path:
        return None
    kept = read(layout)
    if kept is None:
        password = secrets.token_urlsafe(24)
        kept = Credential(USER, password, _bcrypt(password))
        atomic_write(credential_path(layout), f"{kept.user}\n{kept.password}\n{kept.digest}\n", mode=0o600)
    try:
        theirs = Path(settings.htpasswd_path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise HostError(f"DOCKER_MIRROR_HTPASSWD_PATH={settings.htpasswd_path!r}: cannot read it ({err})") from None
    # A user of theirs with our name would be shadowed silently: ours is the one kept.
    lines = [line for line in theirs if line.partition(":")[0] != USER]
    text = "\n".join([*lines, f"{USER}:{kept.digest}"]) + "\n"
    path = merged_htpasswd_path(layout)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write(path, text, mode=0o600)
    return path
