"""Image references rewritten to pull through the mirror, for this process.

The grammar and the mapping itself are pure (mirror.images.rewrite); this
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
  so rendering stays pure); `playbook_variables(settings)` is the unprobed
  set that goes into extra_vars.yaml for the Ansible filter plugin.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache

from . import images, probes
from .layout import mirror_url
from . import settings as settings_module
from .settings import Settings

_configured: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Settings for every later call made without `settings=` (None: load .config again)."""
    global _configured
    _configured = settings
    _default_settings.cache_clear()


@lru_cache(maxsize=1)
def _default_settings() -> Settings:
    return settings_module.load(os.environ.get("KCONFIG_CONFIG", ".config"))


def current_settings() -> Settings:
    return _configured if _configured is not None else _default_settings()


def client_host(bind_address: str) -> str:
    """The host this machine's clients use for a mirror bound to `bind_address`.

    A wildcard bind is reached on loopback; an IPv6 host is bracketed, as a
    reference (`[::1]:5000/library/nginx`) needs it.
    """
    return probes.bracketed(probes.probe_host(bind_address))


def mirror_ports(settings: Settings) -> dict[str, int]:
    """Registry host -> mirror port, for every configured upstream."""
    return {upstream.registry: upstream.port for upstream in settings.upstreams}


def mirror_urls(settings: Settings) -> dict[str, str]:
    return {upstream.registry: mirror_url(settings, upstream) for upstream in settings.upstreams}


@lru_cache(maxsize=None)
def _answers(host: str, port: int, tls: bool) -> bool:
    return probes.registry_answers(host, port, tls=tls)


def forget_probes() -> None:
    """Probe again on next use (tests, or a long-running process that wants to)."""
    _answers.cache_clear()


def mirror_answers(settings: Settings, port: int) -> bool:
    host = client_host(settings.bind_address).strip("[]")  # sockets take IPv6 bare
    return _answers(host, port, bool(settings.tls_certificate))


def answering_ports(settings: Settings, probe: bool = True) -> dict[str, int]:
    """The port map narrowed to mirrors in use and answering (all, with probe=False)."""
    if not (settings.enabled and settings.use):
        return {}
    ports = mirror_ports(settings)
    if not probe:
        return ports
    return {registry: port for registry, port in ports.items() if mirror_answers(settings, port)}


def mirror_images(references: Iterable[str], settings: Settings | None = None,
                  probe: bool = True) -> list[str]:
    """mirror_image() of each; every reference is validated before any probe runs,
    so a bad one fails the whole call (naming it) without printing half a list."""
    references = list(references)
    parsed = [images.parse(reference) for reference in references]
    settings = current_settings() if settings is None else settings
    if not (settings.enabled and settings.use):
        return references
    host = client_host(settings.bind_address)
    ports = mirror_ports(settings)
    out = []
    for reference, ref in zip(references, parsed):
        port = ports.get(ref.registry)
        # Probe only the mirrors these references need, each once per process.
        if port is not None and (not probe or mirror_answers(settings, port)):
            out.append(images.rewrite(reference, host, {ref.registry: port}))
        else:
            out.append(reference)
    return out


def mirror_image(reference: str, settings: Settings | None = None, probe: bool = True) -> str:
    """`reference` through the mirror of its registry, or unchanged (see the module doc).

    Raises images.InvalidReference for an invalid reference, mirror or not.
    """
    return mirror_images([reference], settings, probe)[0]


def playbook_variables(settings: Settings) -> dict:
    """What a playbook needs besides the Kconfig symbols (goes into extra_vars.yaml).

    `docker_mirror_address` is the host clients on the mirror host use; a
    fleet playbook whose clients sit elsewhere overrides it with the mirror
    host's LAN name (-e docker_mirror_address=...). No probe: the playbook
    runs elsewhere and later, so it decides liveness itself (`enabled=`).
    """
    return {
        "docker_mirror_address": client_host(settings.bind_address),
        "docker_mirror_ports": mirror_ports(settings),
        "docker_mirror_urls": mirror_urls(settings),
    }


def template_variables(settings: Settings, probe: bool = True) -> dict:
    """Context for templates rendered by this process that use `docker_mirror_image`.

    The port map holds only the mirrors that are in use and answer, so the
    filter falls back per registry exactly as mirror_image() does.
    """
    return {
        "docker_mirror_address": client_host(settings.bind_address),
        "docker_mirror_ports": answering_ports(settings, probe),
        "use_docker_mirror": settings.enabled and settings.use,
    }
