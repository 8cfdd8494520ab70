"""Image references rewritten to pull through the mirror, for this process.

The grammar and the mapping itself are pure (mirror.model.images.rewrite); this
module adds what needs the outside world: the settings and a liveness probe.

- `mirror_image(ref)` is what workflows call. It gives back `ref` unchanged
  (the fallback) when the mirror is disabled or not in use, when the ref's
  registry has no mirror, or when that mirror does not answer.
- Each mirror port is probed once per process (probes' 0.3 s bound), so a
  workflow rewriting a hundred images waits for a dead mirror once, and a
  mirror that dies mid-run keeps getting the references it got at first.
  `forget_probes()` starts over.
- Settings: an explicit `settings=` argument; else what `configure()` set;
  else `.config` (or $KCONFIG_CONFIG) loaded once, on first use.
- Templates: `template_variables(settings)` is the context for render's pure
  `docker_mirror_image` filter (the probing happens here, while building it,
  so rendering stays pure); the unprobed set that goes into extra_vars.yaml
  for the Ansible filter plugin is mirror.config.extra_vars.playbook_variables.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from ..config import settings as settings_module
from ..model.settings import Settings
from ..model import images
from ..model.endpoint import Endpoint
from ..net import probes

_configured: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Settings for every later call made without `settings=` (None: load .config again)."""
    global _configured
    _configured = settings
    _default_settings.cache_clear()


@lru_cache(maxsize=1)
def _default_settings() -> Settings:
    return settings_module.load_default()


def current_settings() -> Settings:
    return _configured if _configured is not None else _default_settings()


@lru_cache(maxsize=None)
def _answers(endpoint: Endpoint) -> bool:
    return probes.answers(endpoint)


def forget_probes() -> None:
    """Probe again on next use (tests, or a long-running process that wants to)."""
    _answers.cache_clear()


def answering_ports(settings: Settings, probe: bool = True) -> dict[str, int]:
    """The port map narrowed to mirrors in use and answering (all, with probe=False)."""
    if not (settings.enabled and settings.use):
        return {}
    return {u.registry: u.port for u in settings.upstreams if not probe or _answers(u.endpoint)}


def mirror_images(references: Iterable[str], settings: Settings | None = None,
                  probe: bool = True) -> list[str]:
    """mirror_image() of each; every reference is validated before any probe runs,
    so a bad one fails the whole call (naming it) without printing half a list."""
    references = list(references)
    parsed = [images.parse(reference) for reference in references]
    settings = current_settings() if settings is None else settings
    if not (settings.enabled and settings.use):
        return references
    by_registry = {u.registry: u for u in settings.upstreams}
    out = []
    for reference, ref in zip(references, parsed):
        upstream = by_registry.get(ref.registry)
        # Probe only the mirrors these references need, each once per process.
        if upstream is not None and (not probe or _answers(upstream.endpoint)):
            out.append(images.rewrite(reference, settings.client_host, {ref.registry: upstream.port}))
        else:
            out.append(reference)
    return out


def mirror_image(reference: str, settings: Settings | None = None, probe: bool = True) -> str:
    """`reference` through the mirror of its registry, or unchanged (see the module doc).

    Raises images.InvalidReference for an invalid reference, mirror or not.
    """
    return mirror_images([reference], settings, probe)[0]


def template_variables(settings: Settings, probe: bool = True) -> dict:
    """Context for templates rendered by this process that use `docker_mirror_image`.

    The port map holds only the mirrors that are in use and answer, so the
    filter falls back per registry exactly as mirror_image() does.
    """
    return {
        "docker_mirror_address": settings.client_host,
        "docker_mirror_ports": answering_ports(settings, probe),
        "use_docker_mirror": settings.enabled and settings.use,
    }
