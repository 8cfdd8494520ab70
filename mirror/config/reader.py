"""Typed access to .config entries, each rejection naming symbol, value, line and what is allowed."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from ..errors import ConfigError, InvalidReference
from ..model import images
from . import defaults as kconfig_defaults
from . import dotconfig

# Symbols whose values are secrets: never logged, and files holding them are 0600.
SECRET_SUFFIXES = ("_PASSWORD", "_ACCOUNT_KEY", "_SECRET_KEY")


def is_secret(symbol: str) -> bool:
    return symbol.endswith(SECRET_SUFFIXES)


class Reader:
    """Typed access to .config entries. An entry the .config lacks takes the Kconfig
    tree's default, and an int the tree's range (mirror.config.defaults): no default
    or range is written here."""

    def __init__(self, config: dotconfig.DotConfig):
        self.config = config
        self.defaults = kconfig_defaults.of(config)

    def fail(self, symbol: str, value: object, allowed: str):
        # An error goes to the terminal and the logs: a secret's value never does.
        if is_secret(symbol):
            value = "<hidden>"
        elif isinstance(value, str):
            value = re.sub(r"://[^/\s]*@", "://<hidden>@", value)
        raise ConfigError(dotconfig.PREFIX + symbol, value, allowed, self.config.source(symbol))

    def raw(self, symbol: str):
        entry = self.config.entries.get(symbol)
        return self.defaults.default(symbol) if entry is None else entry.value

    def bool(self, symbol: str) -> bool:
        value = self.raw(symbol)
        if not isinstance(value, bool):
            self.fail(symbol, value, "must be y or n")
        return value

    def int(self, symbol: str) -> int:
        low, high = self.defaults.range(symbol)
        value = self.raw(symbol)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(symbol, value, f"must be an integer from {low} to {high}")
        return value

    def str(self, symbol: str) -> str:
        value = self.raw(symbol)
        if not isinstance(value, str):
            self.fail(symbol, value, 'must be a quoted string, CONFIG_X="..."')
        return value

    def path(self, symbol: str, required: bool = True) -> str:
        value = self.str(symbol)
        if not value and not required:
            return value
        if not value.startswith("/") or "\n" in value or "\x00" in value:
            self.fail(symbol, value, "must be an absolute path (starting with /)")
        if not value.isprintable() or value.endswith("\\"):
            # A tab, CR or trailing backslash (a line continuation) passes the shell but
            # not a systemd unit rendered later, after the containers started: refused here.
            self.fail(symbol, value, "must be an absolute path of printable characters, "
                      "without tabs or control characters, not ending in a backslash")
        return value

    def ip(self, symbol: str, allowed: str) -> str:
        """An IP address (v4 or v6) as typed; `allowed` says which the symbol takes."""
        value = self.str(symbol)
        try:
            ipaddress.ip_address(value)
        except ValueError:
            self.fail(symbol, value, allowed)
        return value

    def url(self, symbol: str) -> str:
        value = self.str(symbol)
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 -- raises on a bad port
        except ValueError:
            self.fail(symbol, value, "must be an http:// or https:// URL with a valid port")
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
                or parts.fragment or any(c.isspace() for c in value):
            self.fail(symbol, value, "must be an http:// or https:// URL, e.g. https://registry-1.docker.io")
        return value.rstrip("/")

    def image(self, symbol: str, reference: str, value: str | None = None) -> str:
        """Normalise `reference`, built from the symbol's `value` (default: the same)."""
        try:
            return images.normalize(reference)
        except InvalidReference as err:
            self.fail(symbol, reference if value is None else value,
                      f"must be a valid image reference ({err})")
