"""The modes a mirror container runs in, and how one is chosen (pure)."""

PULL_THROUGH = "pull-through"   # proxy to the upstream
OFFLINE = "offline"             # upstream unreachable: serve the cache read-only
PLAIN = "registry"              # pull-through switched off: a plain registry
MODES = (PULL_THROUGH, OFFLINE, PLAIN)


def choose_mode(pull_through: bool, upstream_up: bool) -> str:
    if not pull_through:
        return PLAIN
    # distribution 2.8 panics at start when its upstream is unreachable:
    # serve the cache read-only until the upstream answers again.
    return PULL_THROUGH if upstream_up else OFFLINE
