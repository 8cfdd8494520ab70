"""The throttling proxy its first users know: the shared link (support/link.py) under its old name.

One implementation: bandwidth shared by every connection, a round trip per
connection and per request, bytes counted, `cut()` to drop every connection.
"""

from support.link import SharedLink as ThrottlingProxy, TokenBucket  # noqa: F401
