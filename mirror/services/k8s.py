"""`make docker-(mirror.services.k8s_manifests)`: write the cluster's manifests ((mirror.services.k8s_manifests)) into a directory.

The secrets the cluster keeps (the http secret shared by every replica, the
refresh's own htpasswd user) are read back from the Secret written last time,
so rendering again changes nothing that .config did not change, and no pod
restarts for nothing. Only the Secret's file holds secrets (0600); nothing
printed names a secret's value.
"""

from __future__ import annotations

import base64
import json
import re
import secrets as random
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import k8s_manifests as manifests
from ..config import dotconfig
from ..config.image_lists import wanted_images
from ..model.settings import Settings
from ..errors import ConfigError, InvalidReference, K8sError, MirrorSwitchedOff
from ..host.credential import _bcrypt
from ..host.files import atomic_write
from ..model import cron, images

WARM_USER = "docker-(mirror.services.k8s_manifests)-refresh"   # the refresh CronJob's htpasswd user
_GENERATED = re.compile(r"^\d\d-[a-z0-9-]+\.yaml$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# The command line's options, each a field of manifests.Options: (option, help).
OPTIONS = (
    ("--namespace", f"the namespace (default: {manifests.Options.namespace})"),
    ("--storage-class", "the cache volume's StorageClass (filesystem backend; default: the cluster's)"),
    ("--warm-image", f"the refresh's image, with skopeo and sh (default: {manifests.Options.warm_image})"),
    ("--hosts-image", "the image that copies the nodes' hosts.toml and registries.conf drop-in, with sh, cp "
     f"and mkdir (default: {manifests.Options.hosts_image})"),
    ("--pause-image", f"the DaemonSet's idle container (default: {manifests.Options.pause_image})"),
    ("--registry-image", "the registries' image, one the cluster can pull (default: "
     "DOCKER_MIRROR_REGISTRY_IMAGE; with the engine built here, which is local to this host, registry:2)"),
)


def options(given: dict) -> manifests.Options:
    """manifests.Options from the command line's values (argparse's vars(); None: not given)."""
    chosen = {}
    for option, _ in OPTIONS:
        name = option[2:].replace("-", "_")
        if given.get(name) is None:
            continue
        if name.endswith("_image"):
            try:
                images.parse(given[name])
            except InvalidReference as err:
                raise K8sError(f"{option} {given[name]!r}: {err}") from None
        chosen[name] = given[name]
    return manifests.Options(**chosen)


@dataclass(frozen=True)
class Report:
    out: Path
    written: tuple[Path, ...]
    removed: tuple[Path, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def lines(self) -> list[str]:
        """What was done, for people (file names only: never a secret's value)."""
        return ([f"wrote {path}" for path in self.written] +
                [f"removed {path} (no longer rendered)" for path in self.removed] +
                [f"apply with: kubectl apply -f {self.out}"])


def default_out(settings: Settings) -> Path:
    """k8s/ beside the .config it was rendered from."""
    return Path(settings.config_path).resolve().parent / "k8s"


def render(settings: Settings, config: dotconfig.DotConfig, out: str | Path | None = None,
           options: manifests.Options = manifests.Options()) -> Report:
    """Check everything, then write every manifest into `out` (default: default_out)."""
    if not settings.enabled:
        raise MirrorSwitchedOff(f"{settings.config_path}: CONFIG_ENABLE_DOCKER_MIRROR is off: "
                                "no mirror to render for Kubernetes (switch it on in 'make menuconfig')")
    _check_names(settings, config, options)
    out = Path(out) if out is not None else default_out(settings)
    _check_out(out)
    schedule = _schedule(settings, config)
    targets, list_errors = wanted_images(settings) if schedule is not None else ([], [])
    ca_bundle = settings.storage.ca_bundle
    storage_ca = _read(ca_bundle, "DOCKER_MIRROR_STORAGE_CA_BUNDLE", config) if ca_bundle else ""
    node_ca = _node_ca(settings, config)
    files = manifests.manifests(settings, options, _secrets(settings, config, out), warm_targets=targets,
                          schedule=schedule, storage_ca=storage_ca, node_ca=node_ca)
    _refuse_foreign(out, files)
    written = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            written.append(atomic_write(out / name, text, mode=0o600 if name == manifests.SECRET_FILE else 0o644))
        removed = _remove_stale(out, set(files))
    except OSError as err:
        raise K8sError(f"{err.filename or out}: cannot write the manifests there ({err.strerror}); "
                       "choose another directory with --out (K8S_OUT=DIR for make)") from None
    if settings.registry_built and not options.registry_image:
        list_errors = [*list_errors, (
            f"the registry engine built here ({settings.registry_image}) is local to this host: the "
            f"manifests run {manifests.cluster_registry_image(settings, options)}, without the product's patches; "
            "push the built image to a registry the cluster pulls from and pass --registry-image REF "
            "(make docker-(mirror.services.k8s_manifests) K8S_ARGS='--registry-image REF')")]
    return Report(out, tuple(written), removed, tuple(f"warning: {line}" for line in list_errors))


def _check_names(settings: Settings, config: dotconfig.DotConfig, options: manifests.Options) -> None:
    if not _NAMESPACE.match(options.namespace) or len(options.namespace) > 63:
        raise K8sError(f"--namespace {options.namespace!r}: must be 1-63 lower-case letters, digits "
                       "and '-', starting and ending with a letter or digit (a Kubernetes namespace)")
    symbol = "DOCKER_MIRROR_CONTAINER_PREFIX"
    prefix = settings.container_prefix
    # The longest names made from the prefix: PREFIX-containerd-hosts, PREFIX-registries-conf
    # and PREFIX-KEY-storage.
    longest = max([f"{prefix}-containerd-hosts", manifests.containers_config_map(settings),
                   *(f"{n}-storage" for n in manifests.names(settings).values())], key=len)
    for name in (prefix, longest):
        problem = manifests.name_problem(name)
        if problem:
            shown = "" if name == prefix else f"the object name {name!r} made from it "
            raise ConfigError(dotconfig.PREFIX + symbol, prefix, f"{shown}{problem}", config.source(symbol))


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise K8sError(f"{out}: exists and is not a directory; the manifests need a directory "
                       "(choose another with --out, or K8S_OUT=DIR for make)")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise K8sError(f"{out}: {parent} is not a directory; choose another --out")
            break


def _schedule(settings: Settings, config: dotconfig.DotConfig) -> cron.Schedule | None:
    if not settings.refresh:
        return None
    symbol = "DOCKER_MIRROR_REFRESH_ON_CALENDAR"
    try:
        return cron.parse(settings.refresh_on_calendar)
    except cron.NoCronEquivalent:
        raise ConfigError(dotconfig.PREFIX + symbol, settings.refresh_on_calendar, cron.ALLOWED,
                          config.source(symbol)) from None


def _previous(out: Path) -> dict[str, str]:
    """The Secret written last time, decoded ({} when there is none or it is not ours)."""
    try:
        for doc in yaml.safe_load_all((out / manifests.SECRET_FILE).read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                return {str(k): base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
    except (OSError, ValueError, yaml.YAMLError, TypeError, AttributeError):
        pass
    return {}


def _previous_warm_user(previous: dict[str, str]) -> tuple[str, str] | None:
    """(password, bcrypt digest) of the refresh's user from the last Secret, if both are there."""
    digest = next((line.split(":", 1)[1] for line in previous.get("htpasswd", "").splitlines()
                   if line.startswith(WARM_USER + ":")), None)
    try:
        auths = json.loads(previous.get("warm-auth.json", "{}"))["auths"]
        user, _, password = base64.b64decode(next(iter(auths.values()))["auth"]).decode().partition(":")
    except (ValueError, KeyError, TypeError, StopIteration):
        return None
    return (password, digest) if digest and user == WARM_USER and password else None


def _secrets(settings: Settings, config: dotconfig.DotConfig, out: Path) -> manifests.ClusterSecrets:
    previous = _previous(out)
    http_secret = previous.get("http-secret") or random.token_urlsafe(32)
    htpasswd = warm_password = ""
    if settings.htpasswd_path:
        kept = _previous_warm_user(previous)
        warm_password, digest = kept or (random.token_urlsafe(24), None)
        digest = digest or _bcrypt(warm_password)
        users = _read(settings.htpasswd_path, "DOCKER_MIRROR_HTPASSWD_PATH", config)
        htpasswd = users.rstrip("\n") + "\n" + f"{WARM_USER}:{digest}\n"
    tls_cert = tls_key = ""
    if settings.tls_certificate:
        generated = settings.tls_generate
        for_symbol = "DOCKER_MIRROR_TLS_GENERATE" if generated else None
        tls_cert = _read(settings.tls_certificate, for_symbol or "DOCKER_MIRROR_TLS_CERTIFICATE", config)
        tls_key = _read(settings.tls_key, for_symbol or "DOCKER_MIRROR_TLS_KEY", config)
    return manifests.ClusterSecrets(http_secret, htpasswd, WARM_USER if htpasswd else "", warm_password,
                              tls_cert, tls_key)


def _node_ca(settings: Settings, config: dotconfig.DotConfig) -> str:
    """The CA the nodes' runtimes are given to verify the mirrors' certificate ("" without TLS or a CA)."""
    if not (settings.tls_certificate and settings.tls_ca):
        return ""
    symbol = "DOCKER_MIRROR_TLS_GENERATE" if settings.tls_generate else "DOCKER_MIRROR_TLS_CA_CERTIFICATE"
    return _read(settings.tls_ca, symbol, config)


def _read(path: str, symbol: str, config: dotconfig.DotConfig) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        why = getattr(err, "strerror", None) or "not UTF-8 text"
        if symbol == "DOCKER_MIRROR_TLS_GENERATE":
            raise ConfigError(dotconfig.PREFIX + symbol, "y", f"the generated {path} cannot be read ({why}): "
                              "run 'make docker-mirror' once to make it, or give a certificate and key "
                              "(DOCKER_MIRROR_TLS_GIVEN)", config.source(symbol)) from None
        raise ConfigError(dotconfig.PREFIX + symbol, path, f"must be a readable file ({why}): "
                          "the cluster's Secret carries it", config.source(symbol)) from None


def _ours(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.readline().startswith(manifests.HEADER)


def _refuse_foreign(out: Path, files: dict[str, str]) -> None:
    """A file of the user's that has a manifest's name is never overwritten."""
    for name in files:
        path = out / name
        try:
            if path.is_file() and not _ours(path):
                raise K8sError(f"{path}: a file this command did not write has the name of a manifest; "
                               "move it away, or choose another directory with --out (K8S_OUT=DIR for make); "
                               "nothing was written")
        except OSError as err:
            raise K8sError(f"{path}: cannot be read ({err.strerror}); nothing was written") from None


def _remove_stale(out: Path, wanted: set[str]) -> tuple[Path, ...]:
    """Manifests this command wrote before that are no longer rendered (an upstream switched off)."""
    removed = []
    for path in sorted(out.iterdir()):
        if path.name in wanted or not _GENERATED.match(path.name) or not path.is_file():
            continue
        if _ours(path):
            path.unlink()
            removed.append(path)
    return tuple(removed)
