"""Kconfig preprocessor functions: host probes for auto-detection.

kconfiglib imports this module and silently ignores an ImportError raised
inside it, which would turn every probe into "" (and every detected default
into n) without a word. So a failed import is re-raised as RuntimeError, and
the Kconfig tree itself checks that these functions were registered.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
try:
    from mirror.host.systemd import systemd_is_pid1
    from mirror.net import probes
except ImportError as err:  # kconfiglib would swallow this one
    raise RuntimeError(f"kconfig/kconfigfunctions.py: cannot import the probes: {err}") from err


def _yn(value: bool) -> str:
    return "y" if value else "n"


def _probes_off() -> bool:
    # mirror.config.defaults parses the tree for its defaults alone: no host probe then.
    return os.environ.get("DOCKER_MIRROR_PROBES") == "off"


def _loaded(kconf, name):
    return "y"


def _dir_exists(kconf, name, path=""):
    return _yn(not _probes_off() and os.path.isdir(path or "/mirror/docker"))


def _registry_answers(kconf, name, address=""):
    if _probes_off():
        return "n"
    host, port = probes.split_address(address or "127.0.0.1:5000")
    return _yn(probes.registry_answers(host, port))


def _docker_answers(kconf, name, sock_path=""):
    return _yn(not _probes_off() and probes.docker_engine_answers(sock_path or probes.DOCKER_SOCKET))


def _systemd_pid1(kconf, name):
    return _yn(not _probes_off() and systemd_is_pid1())


functions = {
    "docker-mirror-probes-loaded": (_loaded, 0, 0),
    "docker-mirror-dir-exists": (_dir_exists, 0, 1),
    "docker-mirror-registry-answers": (_registry_answers, 0, 1),
    "docker-engine-answers": (_docker_answers, 0, 1),
    "systemd-is-pid1": (_systemd_pid1, 0, 0),
}
