"""The registry engine built here (mirror.engine.build): what every mirror under test runs.

The mirror containers get it through the `registry_image` fixture (its image);
tests that run a mirror as a plain process (support.pullthrough.ProxyRegistry,
the rendered configs of test_render) run its binary. Upstream registries, which
play Docker Hub and the others, stay Debian's /usr/bin/docker-registry.
"""

from __future__ import annotations

from functools import cache

from mirror.engine import build


@cache
def mirror_binary() -> str:
    """The built engine's binary: from the cache, else built now (once per machine)."""
    return str(build.ensure().binary)
