"""What this host's Docker and containerd clients should hold (pure: no I/O).

- Docker: the Docker Hub mirror goes into `registry-mirrors` of daemon.json
  (Docker mirrors Docker Hub only), and every mirror's HOST:PORT into
  `insecure-registries` when the mirrors speak plain HTTP on an address that
  is not loopback (dockerd trusts plain HTTP on 127.0.0.0/8 by itself).
- containerd: `certs.d/<registry>/hosts.toml` for every mirrored registry,
  the mirror first and the real registry as `server` (the fallback), in the
  directory containerd's `config_path` names (set to certs_dir when unset).

Parsing, merging and unmerging daemon.json are planned here; the text of
hosts.toml and the edit of containerd's config.toml (made from templates/) in
mirror.client_text; services.clients reads and writes the files.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ClientFileError
from .images import DOCKER_HUB
from .settings import Settings

REGISTRY_MIRRORS = "registry-mirrors"
INSECURE_REGISTRIES = "insecure-registries"
DOCKER_HUB_SERVER = "https://registry-1.docker.io"  # where Docker Hub's API really lives

@dataclass(frozen=True)
class HostMirror:
    registry: str      # docker.io, ghcr.io, ... (the certs.d directory name)
    server: str        # the real registry: containerd's fallback
    mirror_url: str    # http(s)://HOST:PORT
    address: str = ""  # HOST:PORT of the mirror (containers/image, BuildKit and k3s name it so)
    tls: bool = False  # the mirror speaks HTTPS (with the CA in Wanted.ca_file when generated/given)
    server_insecure: bool = False   # the real registry itself speaks plain HTTP (a custom remote)


@dataclass(frozen=True)
class Wanted:
    mirrors: tuple[str, ...]     # registry-mirrors entries
    insecure: tuple[str, ...]    # insecure-registries entries
    hosts: tuple[HostMirror, ...]
    # the mirror's CA file to hand out (generated, or given), and the HOST:PORT of every mirror
    # (dockerd reads /etc/docker/certs.d/HOST:PORT/ca.crt, for registry-mirrors too)
    ca_file: str | None = None
    ca_addresses: tuple[str, ...] = ()
    authorization: str | None = field(default=None, repr=False)   # for hosts.toml
    credential: tuple[str, str] | None = field(default=None, repr=False)   # for k3s' registries.yaml


def registry_server(registry: str) -> str:
    """The real registry behind `registry`, as containerd's `server` (fallback)."""
    return DOCKER_HUB_SERVER if registry == DOCKER_HUB else f"https://{registry}"


def wanted(settings: Settings) -> Wanted:
    """What this host's clients need for `settings`' mirrors."""
    urls = {u.registry: u.endpoint.url for u in settings.upstreams}
    # dockerd allows plain HTTP on loopback without being told; anywhere else
    # it refuses to talk HTTP to a registry unless it is listed as insecure.
    insecure = tuple(u.endpoint.client_address for u in settings.upstreams
                     if not u.endpoint.tls and not ipaddress.ip_address(u.endpoint.probe_host).is_loopback)
    return Wanted(
        mirrors=(urls[DOCKER_HUB],) if DOCKER_HUB in urls else (),
        insecure=insecure,
        hosts=tuple(HostMirror(u.registry, registry_server(u.registry), u.endpoint.url, u.endpoint.client_address,
                               u.endpoint.tls, u.remote_url.startswith("http://"))
                    for u in settings.upstreams),
        ca_file=settings.tls_ca,
        ca_addresses=tuple(u.endpoint.client_address for u in settings.upstreams) if settings.tls_ca else (),
        authorization=basic_authorization(settings.client_credential),
        credential=settings.client_credential,
    )


def _same_mirror(a: str, b: str) -> bool:
    # dockerd stores mirrors with a trailing slash: "http://h:5000/" is "http://h:5000"
    return a.rstrip("/") == b.rstrip("/")


def parse_daemon_json(data: bytes | None, path: str | Path) -> dict:
    """daemon.json's object ({} when absent or blank, as dockerd reads it), validated."""
    if data is None:
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ClientFileError(f"{path}: not UTF-8 text ({err}); left untouched: "
                              "fix it and run again") from None
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ClientFileError(
            f"{path}: not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}; "
            "left untouched: fix it (dockerd will not start with it either) and run again") from None
    if not isinstance(doc, dict):
        raise ClientFileError(f"{path}: holds a JSON {type(doc).__name__}, not an object "
                              "({...}); left untouched: fix it and run again")
    for key in (REGISTRY_MIRRORS, INSECURE_REGISTRIES):
        value = doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ClientFileError(f"{path}: {key!r} is {value!r}, not a list of strings; "
                                  "left untouched: fix it and run again")
    return doc


def dump_daemon_json(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def merge_daemon_json(current: dict, mirrors, insecure) -> tuple[dict, dict[str, list[str]]]:
    """`current` with `mirrors` and `insecure` entries merged in, and what was added.

    Our mirror goes first in registry-mirrors (dockerd tries them in order and
    the local mirror is the one the user asked for); other entries keep their
    order. An entry already there (modulo a trailing slash for mirrors) is not
    added again, and not reported as added, so undo leaves it.
    """
    new = dict(current)
    added: dict[str, list[str]] = {}
    for key, entries, first in ((REGISTRY_MIRRORS, mirrors, True), (INSECURE_REGISTRIES, insecure, False)):
        existing = list(current.get(key, []))
        fresh: list[str] = []
        for entry in entries:
            if not any(_same_mirror(entry, have) for have in existing + fresh):
                fresh.append(entry)
        if fresh:
            new[key] = fresh + existing if first else existing + fresh
            added[key] = fresh
    return new, added


def unmerge_daemon_json(current: dict, added: dict[str, list[str]], created_keys) -> dict:
    """`current` without the entries in `added`; a key in `created_keys` goes once empty."""
    new = dict(current)
    for key, entries in added.items():
        if not isinstance(new.get(key), list):
            continue
        kept = [entry for entry in new[key] if entry not in entries]
        if not kept and key in created_keys:
            del new[key]
        else:
            new[key] = kept
    return new


def basic_authorization(credential: tuple[str, str] | None) -> str | None:
    """The Authorization header value of a user and password (RFC 7617)."""
    if credential is None:
        return None
    return "Basic " + base64.b64encode(":".join(credential).encode("utf-8")).decode("ascii")
