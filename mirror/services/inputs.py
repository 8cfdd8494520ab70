"""What a long-running process of the mirror started with, as one digest.

The status page service loads the settings once, and reads the TLS
certificate and key once, when it starts; the keeper and the page both run
the code they loaded then. Neither notices a changed .config, a password
changed in the htpasswd file or a re-issued certificate. So each records, when
it starts, the digest of what it read (next to the lock it holds: the
keeper's `.keeper.inputs`, the page's `observe/.serve.inputs`), and `make
docker-mirror` restarts it when the digest of what it would read now
differs. The containers follow the same rule through their config hash
(engine.containers).

The digest covers every setting (the command line's overrides included,
as they are settings), the bytes of every file a setting names, and the
product's own code and templates: an upgrade restarts them too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

from ..config.kconfig import ROOT
from ..host import locks
from ..host.files import atomic_write
from ..model.settings import Settings


@lru_cache(maxsize=1)
def code_digest() -> str:
    """The product's code and templates, as this process found them (loaded once)."""
    found = hashlib.sha256()
    for base, pattern in ((ROOT / "mirror", "*.py"), (ROOT / "templates", "*")):
        for path in sorted(base.rglob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                found.update(str(path.relative_to(ROOT)).encode() + b"\0")
                found.update(hashlib.sha256(path.read_bytes()).digest())
    return found.hexdigest()


def files_read(settings: Settings) -> list[str]:
    """The files the settings name, whose bytes a process may have read at its start."""
    named = [settings.htpasswd_path, settings.tls_certificate, settings.tls_key, settings.tls_ca,
             settings.storage.ca_bundle, settings.extra_image_list]
    return sorted({path for path in named if path})


def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def digest(settings: Settings, code: str | None = None) -> str:
    """`code`: the code's digest when not this process's (code_digest())."""
    values = dataclasses.asdict(settings)
    values["config_path"] = os.path.abspath(settings.config_path)   # ./.config and /x/.config alike
    contents = {path: _file_digest(path) for path in files_read(settings)}
    return hashlib.sha256(json.dumps([values, contents, code or code_digest()], default=str,
                                     sort_keys=True).encode()).hexdigest()


def record_path(lock: Path) -> Path:
    return lock.with_name(lock.name.removesuffix(".lock") + ".inputs")


def record(held, lock: Path, settings: Settings) -> None:
    """Called by the process holding `lock` (`held`, its open file) before it writes its pid
    there: whoever sees the pid sees the record too. The previous holder's pid goes first, or
    it would be taken for this one's meanwhile. 0600: the digest is of secrets, among others."""
    held.seek(0)
    held.truncate()
    held.flush()
    atomic_write(record_path(lock), f"{digest(settings)}\ncode {code_digest()}\n", mode=0o600)


def recorded(lock: Path) -> str | None:
    return _recorded(lock)[0]


def recorded_code(lock: Path) -> str | None:
    """The digest of the code the holder of `lock` runs (the second line of its record)."""
    return _recorded(lock)[1]


def _recorded(lock: Path) -> tuple[str | None, str | None]:
    try:
        lines = record_path(lock).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None, None
    code = lines[1].removeprefix("code ").strip() if len(lines) > 1 else None
    return (lines[0].strip() if lines else None) or None, code or None


def stale(lock: Path, settings: Settings) -> bool:
    """A process holds `lock` and started with other inputs than `settings` give now (or
    recorded none: an older version). A holder that has not written its pid yet is starting
    with these inputs."""
    return bool(locks.holder(lock)) and recorded(lock) != digest(settings)
