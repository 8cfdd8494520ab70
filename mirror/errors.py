"""Typed errors that carry a message for the user.

The CLI turns every MirrorError into its message on stderr and its exit code,
in one place (mirror.cli.main); anything else is a bug and keeps its traceback.
"""


class MirrorError(Exception):
    """A failure the user can act on; `str(err)` is the whole message."""

    exit_code = 1


class ConfigError(MirrorError):
    """A bad value in .config (or another user-supplied file)."""

    exit_code = 2

    def __init__(self, symbol: str, value: object, allowed: str, source: str = ""):
        self.symbol = symbol
        self.value = value
        self.allowed = allowed
        self.source = source
        where = f" ({source})" if source else ""
        super().__init__(f"{symbol}={value!r}{where}: {allowed}")


class NotConfiguredError(MirrorError):
    """No .config yet."""

    exit_code = 2


class DockerError(MirrorError):
    """The Docker engine is missing, unreachable, or refused an operation."""

    exit_code = 3
