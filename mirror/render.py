"""Rendering generated files from templates/ (pure: reads templates only).

The text of every generated file lives in templates/; the functions here only
choose the template and hand it the values. Values that come from the user
reach the text through the quoting filters below, never raw, so a quote, a
colon, a `#`, a `%` or a newline cannot change the structure of the file.
"""

import os
import re
from functools import lru_cache
from pathlib import Path

import jinja2
import yaml

from .model.settings import Settings, Upstream
from .model import images
from .model.modes import MODES, OFFLINE, PULL_THROUGH
from .model.replicas import REPLICA_HOST
from .model.retention import UPLOAD_AGE_HOURS

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

# Where the container code mounts the host's files inside a registry container.
CONTAINER_STORAGE = "/var/lib/registry"
CONTAINER_HTPASSWD = "/auth/htpasswd"
CONTAINER_TLS_CERT = "/certs/cert.pem"
CONTAINER_TLS_KEY = "/certs/key.pem"
# HAProxy's copy (it answers the "no replica" 503 itself, over TLS when the mirror has it):
# a `crt` file without its key makes HAProxy load the key from the same name + ".key".
HAPROXY_TLS_CERT = "/certs/mirror.pem"
HAPROXY_TLS_KEY = HAPROXY_TLS_CERT + ".key"

# distribution 3.x only (proxy.ttl): never expire; the product's own policy drops what goes
# (2.8 has a fixed 7 days, made harmless by storage deletes being off).
PROXY_TTL = "0s"

HTPASSWD_REALM = "docker-mirror"
# The replicas' Redis password (mirror.host.redis_secret makes it with token_urlsafe): it goes
# unquoted into redis.conf, so nothing but these characters may reach it.
REDIS_PASSWORD = re.compile(r"[A-Za-z0-9_-]{32,128}")


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_str(value: str) -> str:
    """A TOML basic string holding exactly `value` (control characters escaped)."""
    if not isinstance(value, str):
        raise TypeError(f"toml_str quotes strings only, not {type(value).__name__}")
    out = []
    for char in value:
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def to_yaml(value) -> str:
    """YAML that yaml.safe_load reads back to exactly `value`.

    allow_unicode stays off: PyYAML then writes U+0085 (NEL) raw inside a
    single-quoted scalar, which its own loader reads back as a line break.
    """
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True,
                          allow_unicode=False, width=float("inf")).rstrip("\n")


def yaml_str(value: str) -> str:
    """A YAML double-quoted scalar holding exactly `value`.

    Everything outside printable ASCII is written as an escape, so the text
    is plain ASCII and means the same to PyYAML and to the registry's Go YAML
    parser (both read \\" \\\\ \\xNN \\uNNNN \\UNNNNNNNN in double quotes);
    nothing is left for a YAML parser to fold, strip or reinterpret.
    """
    if not isinstance(value, str):
        # quoting a number or None would silently turn it into a string
        raise TypeError(f"yaml_str quotes strings only, not {type(value).__name__}")
    out = []
    for char in value:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _unit_safe(value: str) -> str:
    # A unit file has no escape for a line break, and a trailing backslash
    # joins the next line: such a value cannot be written, only refused.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or value.endswith("\\"):
        raise ValueError(f"{value!r} cannot be written into a systemd unit file "
                         "(control character or trailing backslash)")
    return value


def systemd_value(value: str) -> str:
    """A unit-file setting value (paths, Description, OnCalendar).

    systemd expands %-specifiers in these settings, so a literal `%` is `%%`.
    """
    return _unit_safe(str(value)).replace("%", "%%")


_PLAIN_ARG = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_.,:@+=-")


def systemd_arg(value: str) -> str:
    """One word of an ExecStart= command line, as systemd.service(5) splits it.

    `%` (specifiers) becomes `%%` and `$` (environment expansion) becomes
    `$$`; a word with anything beyond plain path characters is double-quoted
    with C-style escapes for `"` and `\\`, so spaces stay inside the word.
    """
    return _quote_word(_unit_safe(str(value)).replace("%", "%%").replace("$", "$$"))


def systemd_exec(value: str) -> str:
    """The executable (first word) of an ExecStart= command line.

    Quoted and `%`-escaped like an argument, but systemd does no `$`
    expansion here, and it refuses an executable path holding a quote or a
    backslash ("Executable name contains special characters"): refuse it
    here, where the error can name the path.
    """
    value = _unit_safe(str(value))
    if any(c in value for c in "\"'\\"):
        raise ValueError(f"systemd cannot run an executable whose path holds a quote or a "
                         f"backslash: {value!r}")
    return _quote_word(value.replace("%", "%%"))


def systemd_path(value: str) -> str:
    """One path of a list setting (RequiresMountsFor=): systemd splits it into words
    (quotes and backslash escapes, as an ExecStart= word) and expands %-specifiers,
    but expands no `$`."""
    return _quote_word(_unit_safe(str(value)).replace("%", "%%"))


def systemd_args(words) -> str:
    """More words for an ExecStart= line, each a systemd_arg, each after a space."""
    return "".join(f" {systemd_arg(word)}" for word in words)


def _quote_word(value: str) -> str:
    if value and set(value) <= _PLAIN_ARG:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exports_path(path: str) -> str:
    """A path for exports(5): double-quoted, with octal escapes where quotes are not enough.

    exportfs decodes `\\NNN` inside or outside quotes; `"` would end the
    quoting, `\\` could start an escape, and control characters would end the
    line, so those are escaped, as exportfs itself writes them.
    """
    out = []
    for char in path:
        if char in '"\\#' or ord(char) < 0x20 or ord(char) == 0x7F:
            out.extend(f"\\{byte:03o}" for byte in char.encode())
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


@jinja2.pass_context
def docker_mirror_image(context, reference, mirror_address=None, ports=None, enabled=None):
    """`{{ ref | docker_mirror_image }}`: the reference through its mirror, or unchanged.

    Pure: the liveness probe happened when the caller built the context
    (mirror.services.rewrite.template_variables), whose docker_mirror_address,
    docker_mirror_ports and use_docker_mirror are the defaults here. The
    arguments are those of the Ansible filter plugin, so one template reads
    the same under Ansible (with extra_vars.yaml) and here.
    """
    def pick(given, name):
        return context.resolve_or_missing(name) if given is None else given

    address, ports, enabled = (pick(mirror_address, "docker_mirror_address"),
                               pick(ports, "docker_mirror_ports"), pick(enabled, "use_docker_mirror"))
    if jinja2.runtime.missing in (address, ports, enabled):
        raise jinja2.UndefinedError(
            "docker_mirror_image needs docker_mirror_address, docker_mirror_ports and "
            "use_docker_mirror in the context (mirror.services.rewrite.template_variables) or as arguments")
    return images.mirror_reference(reference, address, ports, enabled)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["to_yaml"] = to_yaml
    env.filters["toml_str"] = toml_str
    env.filters["yaml_str"] = yaml_str
    env.filters["systemd"] = systemd_value
    env.filters["systemd_arg"] = systemd_arg
    env.filters["systemd_exec"] = systemd_exec
    env.filters["systemd_args"] = systemd_args
    env.filters["systemd_path"] = systemd_path
    env.filters["exports_path"] = exports_path
    env.filters["docker_mirror_image"] = docker_mirror_image
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def registry_config(settings: Settings, upstream: Upstream, *, major: int, mode: str,
                    http_secret: str, redis: dict | None = None) -> str:
    """The registry's config.yml for the mirror of one upstream, in `mode` (model.modes);
    `redis` ({"addr", "password", "db"}): a replica's shared blob-descriptor cache."""
    if mode not in MODES:
        raise ValueError(f"unknown mirror mode {mode!r}")
    if major not in (2, 3):
        raise ValueError(f"unsupported distribution major version {major!r} (2 or 3)")
    return render(
        "registry-config.yml.j2",
        settings=settings, upstream=upstream, storage=settings.storage,
        proxy=mode == PULL_THROUGH, readonly=mode == OFFLINE, mode=mode,
        proxy_ttl=PROXY_TTL if major == 3 else None, upload_age_hours=UPLOAD_AGE_HOURS,
        # host networking: the container listens on the host's address itself
        addr=upstream.endpoint.listen,
        debug_addr=upstream.endpoint.debug_listen,
        http_secret=http_secret, realm=HTPASSWD_REALM,
        storage_dir=CONTAINER_STORAGE, htpasswd=CONTAINER_HTPASSWD,
        tls_cert=CONTAINER_TLS_CERT, tls_key=CONTAINER_TLS_KEY, redis=redis,
    )


def haproxy_config(settings: Settings, servers: dict[str, list[tuple[str, int]]]) -> str:
    """haproxy.cfg: a frontend on each mirror's address, balancing over `servers`
    ({upstream key: [(replica name, loopback port)]}) with health checks on /v2/."""
    return render("haproxy.cfg.j2", upstreams=settings.upstreams, servers=servers,
                  replicas=settings.replicas, host=REPLICA_HOST,
                  tls_cert=HAPROXY_TLS_CERT if settings.tls_certificate else None)


def redis_config(settings: Settings, *, password: str, maxmemory: str = "256mb") -> str:
    """redis.conf of the replicas' shared blob-descriptor cache; `password`: its requirepass
    (mirror.host.redis_secret: URL-safe characters only, so unquoted)."""
    if not REDIS_PASSWORD.fullmatch(password):
        raise ValueError("the Redis password must be URL-safe characters only")
    return render("redis.conf.j2", replicas=settings.replicas, host=REPLICA_HOST, maxmemory=maxmemory,
                  password=password)


def refresh_service(settings: Settings, *, python: str, workdir: str, config_path: str,
                    mirror_args: tuple[str, ...] = ()) -> str:
    """PREFIX-refresh.service: one refresh run, started by the timer."""
    return render("refresh.service.j2", settings=settings, python=python,
                  workdir=workdir, config_path=config_path, mirror_args=mirror_args)


def refresh_timer(settings: Settings) -> str:
    """PREFIX-refresh.timer: starts the refresh at settings.refresh_on_calendar,
    up to settings.refresh_random_delay minutes later."""
    return render("refresh.timer.j2", settings=settings)


def keeper_service(settings: Settings, *, python: str, workdir: str, config_path: str,
                   mirror_args: tuple[str, ...] = ()) -> str:
    """PREFIX-keeper.service (docker-mirror-keeper.service by default): the keeper (mirror.services.keeper), at boot and ever after."""
    return render("keeper.service.j2", settings=settings, python=python,
                  workdir=workdir, config_path=config_path, mirror_args=mirror_args)


def observe_service(settings: Settings, *, python: str, workdir: str, config_path: str,
                    mirror_args: tuple[str, ...] = ()) -> str:
    """PREFIX-observe.service: the metrics and status page (mirror.services.observe_serve)."""
    return render("observe.service.j2", settings=settings, python=python,
                  workdir=workdir, config_path=config_path, mirror_args=mirror_args)


def nfs_exports(settings: Settings) -> str:
    """/etc/exports.d/PREFIX.exports: settings.path read-only to settings.nfs_clients."""
    if not settings.nfs_clients:
        # exports(5) reads a path with no client as "every host": never write that
        raise ValueError("no NFS clients configured (CONFIG_DOCKER_MIRROR_NFS_CLIENTS)")
    return render("nfs.exports.j2", settings=settings)


def human_size(n: float) -> str:
    """1536 -> '1.5 KiB' (binary units, as du -h); sizes and rates alike."""
    if n < 1024:
        return f"{n:.0f} B"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


def unit_marker(settings: Settings) -> str:
    """What every unit of this mirror holds and no other mirror's does: its .config, as rendered."""
    return f"--config {systemd_arg(os.path.abspath(settings.config_path))} "


def unit_files(settings: Settings, *, python: str, workdir: str, config_path: str,
               mirror_args: tuple[str, ...] = ()) -> dict[str, str]:
    """The mirror's systemd units, by file name: the keeper, the refresh
    service and timer when the refresh is on, the metrics and status page when
    DOCKER_MIRROR_OBSERVE is on. `mirror_args`: the command
    line's overrides of the settings (--path, --port, --name), passed on."""
    names = settings.instance
    context = dict(python=python, workdir=workdir, config_path=config_path, mirror_args=mirror_args)
    units = {names.keeper_unit: keeper_service(settings, **context)}
    if settings.refresh:
        units[names.refresh_unit] = refresh_service(settings, **context)
        units[names.refresh_timer] = refresh_timer(settings)
    if settings.observe.enabled:
        units[names.observe_unit] = observe_service(settings, **context)
    return units
