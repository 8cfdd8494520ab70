"""A setting changed is a setting applied, option by option, from the Kconfig tree (no engine).

Every option of the tree is in exactly one of two tables: FOLLOWED (the parts
of a running mirror that must take it up, each checked here to see the
change: a container's config hash, what the status page and the keeper
started with, a unit file, the exports file) or NO_RESTART (why no running
part needs it; checked to change none of the containers, units or exports).
A new option in neither table fails the first test. That a changed
fingerprint really re-creates or restarts the part, and that the part then
behaves per the new value, is tests/test_setting_applied.py, on the engine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess

import kconfiglib
import pytest

from mirror import render
from mirror.config import defaults
from mirror.config import settings as settings_mod
from mirror.engine import containers, replicas
from mirror.engine.registry_image import RegistryImage
from mirror.host import credential, tls
from mirror.host.layout import Layout
from mirror.model.modes import choose_mode
from mirror.services import inputs
from support.configs import write_config

REGISTRY = "registry"      # the mirror containers: their config hash (engine.containers)
SHARED = "shared"          # HAProxy and Redis (engine.replicas)
SERVICES = "services"      # the status page and the keeper: services.inputs
UNITS = "units"            # the systemd units (render.unit_files)
NFS = "nfs"                # the exports file (render.nfs_exports)
PARTS = (REGISTRY, SHARED, SERVICES, UNITS, NFS)

HUB = "http://127.0.0.1:9"
S3 = dict(DOCKER_MIRROR_STORAGE_FILESYSTEM=False, DOCKER_MIRROR_STORAGE_S3=True,
          DOCKER_MIRROR_S3_ENDPOINT="http://127.0.0.1:8333", DOCKER_MIRROR_S3_REGION="us-east-1",
          DOCKER_MIRROR_S3_BUCKET="mirror-bucket", DOCKER_MIRROR_S3_ACCESS_KEY_ID="access",
          DOCKER_MIRROR_S3_SECRET_KEY="secret")
AZURE = dict(DOCKER_MIRROR_STORAGE_FILESYSTEM=False, DOCKER_MIRROR_STORAGE_AZURE=True,
             DOCKER_MIRROR_AZURE_ACCOUNT_NAME="mirroracct",
             DOCKER_MIRROR_AZURE_ACCOUNT_KEY=base64.b64encode(b"k" * 32).decode(),
             DOCKER_MIRROR_AZURE_CONTAINER="mirror", DOCKER_MIRROR_AZURE_REALM="core.windows.net")
GIVEN_TLS = dict(DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_GIVEN=True, DOCKER_MIRROR_TLS_GENERATE=False)
REPLICATED = dict(S3, DOCKER_MIRROR_REPLICAS=2)
NFS_ON = dict(DOCKER_MIRROR_NFS_EXPORT=True, DOCKER_MIRROR_NFS_CLIENTS="192.168.122.0/24")
OBSERVE_ON = dict(DOCKER_MIRROR_OBSERVE=True)
REFRESH_ON = dict(DOCKER_MIRROR_REFRESH=True)


class CHANGES(dict):
    """Several symbols changed at once (a choice's members)."""


def upstream_on(key):
    return {f"DOCKER_MIRROR_{key}": True, f"DOCKER_MIRROR_{key}_PORT": 5101,
            f"DOCKER_MIRROR_{key}_REMOTE_URL": "http://127.0.0.1:10"}


# symbol: (its new value, the .config it is changed in (besides the base), the parts that follow it).
# A value of the form "{file:NAME}" is a file of the test's own (htpasswd, certificates, CA bundle).
C = dict(REG=(REGISTRY, SERVICES), ALL=(REGISTRY, SERVICES, UNITS))
FOLLOWED = {
    "ENABLE_DOCKER_MIRROR": (False, {}, (REGISTRY, SERVICES, UNITS)),   # taken down: test_setting_applied
    "INSTALL_DOCKER_MIRROR": (False, {}, (REGISTRY, SERVICES, UNITS)),
    "DOCKER_MIRROR_PORT": (5111, {}, C["REG"]),
    "DOCKER_MIRROR_BIND_ADDRESS": ("127.0.0.3", {}, C["REG"]),
    # generated TLS: the certificate's names (re-issued, its bytes in the hash)
    "DOCKER_MIRROR_CLIENT_ADDRESS": ("127.0.0.5", dict(DOCKER_MIRROR_TLS=True), C["REG"]),
    "DOCKER_MIRROR_PATH": ("{dir:elsewhere}", {}, C["ALL"]),
    "DOCKER_MIRROR_PULL_THROUGH_CACHE": (False, {}, C["REG"]),
    "DOCKER_MIRROR_REGISTRY_IMAGE": ("registry:2.8.3", dict(DOCKER_MIRROR_REGISTRY_BUILT=False), C["REG"]),
    "DOCKER_MIRROR_REGISTRY_BUILT": (False, {}, C["REG"]),
    "DOCKER_MIRROR_CONTAINER_PREFIX": ("other-mirror", {}, C["ALL"]),
    "DOCKER_MIRROR_KEEPER": (False, {}, (SERVICES, UNITS)),
    "DOCKER_MIRROR_RECHECK_INTERVAL": (77, dict(DOCKER_MIRROR_KEEPER=True), (SERVICES,)),
    "DOCKER_MIRROR_DOCKERHUB_REMOTE_URL": ("http://127.0.0.1:11", {}, C["REG"]),
    "DOCKER_MIRROR_DOCKERHUB_USERNAME": ("bob", dict(DOCKER_MIRROR_DOCKERHUB_PASSWORD="pw"), C["REG"]),
    "DOCKER_MIRROR_DOCKERHUB_PASSWORD": ("pw2", dict(DOCKER_MIRROR_DOCKERHUB_USERNAME="bob",
                                                     DOCKER_MIRROR_DOCKERHUB_PASSWORD="pw"), C["REG"]),
    # a choice: its members change together
    "DOCKER_MIRROR_STORAGE_FILESYSTEM": (CHANGES(DOCKER_MIRROR_STORAGE_FILESYSTEM=True, DOCKER_MIRROR_STORAGE_S3=False),
                                         S3, C["REG"]),
    "DOCKER_MIRROR_STORAGE_S3": (CHANGES(DOCKER_MIRROR_STORAGE_S3=True, DOCKER_MIRROR_STORAGE_FILESYSTEM=False),
                                 {k: v for k, v in S3.items() if k.startswith("DOCKER_MIRROR_S3")}, C["REG"]),
    "DOCKER_MIRROR_STORAGE_AZURE": (CHANGES(DOCKER_MIRROR_STORAGE_AZURE=True, DOCKER_MIRROR_STORAGE_FILESYSTEM=False),
                                    {k: v for k, v in AZURE.items() if "AZURE_" in k}, C["REG"]),
    "DOCKER_MIRROR_STORAGE_PATH": ("{dir:store}", {}, C["REG"]),
    "DOCKER_MIRROR_STORAGE_CA_BUNDLE": ("{file:ca.pem}", S3, C["REG"]),
    "DOCKER_MIRROR_STORAGE_REDIRECT": (True, S3, C["REG"]),
    "DOCKER_MIRROR_AZURE_ACCOUNT_NAME": ("otheracct", AZURE, C["REG"]),
    "DOCKER_MIRROR_AZURE_ACCOUNT_KEY": (base64.b64encode(b"j" * 32).decode(), AZURE, C["REG"]),
    "DOCKER_MIRROR_AZURE_CONTAINER": ("other", AZURE, C["REG"]),
    "DOCKER_MIRROR_AZURE_REALM": ("core.chinacloudapi.cn", AZURE, C["REG"]),
    "DOCKER_MIRROR_S3_ENDPOINT": ("http://127.0.0.1:8334", S3, C["REG"]),
    "DOCKER_MIRROR_S3_REGION": ("eu-west-1", S3, C["REG"]),
    "DOCKER_MIRROR_S3_BUCKET": ("other-bucket", S3, C["REG"]),
    "DOCKER_MIRROR_S3_ACCESS_KEY_ID": ("access2", S3, C["REG"]),
    "DOCKER_MIRROR_S3_SECRET_KEY": ("secret2", S3, C["REG"]),
    "DOCKER_MIRROR_S3_PATH_STYLE": (False, S3, C["REG"]),
    "DOCKER_MIRROR_S3_ROOT_DIRECTORY": ("/other", S3, C["REG"]),
    "DOCKER_MIRROR_HTPASSWD": (True, dict(DOCKER_MIRROR_HTPASSWD_PATH="{file:htpasswd}"), C["REG"]),
    "DOCKER_MIRROR_HTPASSWD_PATH": ("{file:htpasswd2}", dict(DOCKER_MIRROR_HTPASSWD=True,
                                                             DOCKER_MIRROR_HTPASSWD_PATH="{file:htpasswd}"),
                                    C["REG"]),
    "DOCKER_MIRROR_TLS": (True, {}, C["REG"]),
    "DOCKER_MIRROR_TLS_GIVEN": (CHANGES(DOCKER_MIRROR_TLS_GIVEN=True, DOCKER_MIRROR_TLS_GENERATE=False,
                                        DOCKER_MIRROR_TLS_CERTIFICATE="{file:cert.pem}",
                                        DOCKER_MIRROR_TLS_KEY="{file:key.pem}"),
                                dict(DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_GENERATE=True), C["REG"]),
    "DOCKER_MIRROR_TLS_GENERATE": (CHANGES(DOCKER_MIRROR_TLS_GENERATE=True, DOCKER_MIRROR_TLS_GIVEN=False,
                                           DOCKER_MIRROR_TLS_CERTIFICATE="", DOCKER_MIRROR_TLS_KEY=""),
                                   dict(GIVEN_TLS, DOCKER_MIRROR_TLS_CERTIFICATE="{file:cert.pem}",
                                        DOCKER_MIRROR_TLS_KEY="{file:key.pem}"), C["REG"]),
    "DOCKER_MIRROR_TLS_CERTIFICATE": ("{file:cert2.pem}", dict(GIVEN_TLS, DOCKER_MIRROR_TLS_CERTIFICATE=
                                                              "{file:cert.pem}", DOCKER_MIRROR_TLS_KEY=
                                                              "{file:key.pem}"), C["REG"]),
    "DOCKER_MIRROR_TLS_KEY": ("{file:key2.pem}", dict(GIVEN_TLS, DOCKER_MIRROR_TLS_CERTIFICATE="{file:cert2.pem}",
                                                      DOCKER_MIRROR_TLS_KEY="{file:key.pem}"), C["REG"]),
    # the CA clients are given: nothing running serves it, but the page shows it (its settings)
    "DOCKER_MIRROR_TLS_CA_CERTIFICATE": ("{file:ca.pem}", dict(GIVEN_TLS, DOCKER_MIRROR_TLS_CERTIFICATE=
                                                              "{file:cert.pem}",
                                                              DOCKER_MIRROR_TLS_KEY="{file:key.pem}"),
                                         (SERVICES,)),
    "DOCKER_MIRROR_REPLICAS": (3, REPLICATED, (REGISTRY, SHARED, SERVICES)),
    "DOCKER_MIRROR_REPLICA_PORT_BASE": (21000, REPLICATED, (REGISTRY, SHARED, SERVICES)),
    "DOCKER_MIRROR_REFRESH": (True, {}, (SERVICES, UNITS)),
    "DOCKER_MIRROR_REFRESH_ON_CALENDAR": ("*-*-* 03:30:00", REFRESH_ON, (SERVICES, UNITS)),
    "DOCKER_MIRROR_REFRESH_RANDOM_DELAY": (5, REFRESH_ON, (SERVICES, UNITS)),
    "DOCKER_MIRROR_NFS_EXPORT": (True, dict(DOCKER_MIRROR_NFS_CLIENTS="192.168.122.0/24"), (SERVICES, NFS)),
    "DOCKER_MIRROR_NFS_CLIENTS": ("10.0.0.0/8", NFS_ON, (SERVICES, NFS)),
    "DOCKER_MIRROR_OBSERVE": (True, {}, (SERVICES, UNITS)),
    "DOCKER_MIRROR_OBSERVE_ADDRESS": ("127.0.0.4", OBSERVE_ON, (SERVICES, UNITS)),
    "DOCKER_MIRROR_OBSERVE_PORT": (9555, OBSERVE_ON, (SERVICES, UNITS)),
    "DOCKER_MIRROR_OBSERVE_INTERVAL": (33, OBSERVE_ON, (SERVICES,)),
    "DOCKER_MIRROR_OBSERVE_TEXTFILE_DIR": ("{dir:textfile}", OBSERVE_ON, (SERVICES,)),
    # limits: compared with the running container's own (engine.containers.has_limits)
    "DOCKER_MIRROR_REGISTRY_MEMORY_MB": (640, {}, C["REG"]),
    "DOCKER_MIRROR_CONTAINER_PIDS_LIMIT": (333, {}, C["REG"]),
    "DOCKER_MIRROR_HAPROXY_MEMORY_MB": (160, REPLICATED, (SHARED, SERVICES)),
    "DOCKER_MIRROR_REDIS_MEMORY_MB": (400, REPLICATED, (SHARED, SERVICES)),
}
for _key in ("GHCR", "QUAY", "K8S", "CUSTOM"):
    _on = upstream_on(_key) | ({"DOCKER_MIRROR_CUSTOM_REGISTRY": "registry.example.com"} if _key == "CUSTOM" else {})
    FOLLOWED[f"DOCKER_MIRROR_{_key}"] = (True, {k: v for k, v in _on.items() if k != f"DOCKER_MIRROR_{_key}"},
                                         C["REG"])
    FOLLOWED[f"DOCKER_MIRROR_{_key}_PORT"] = (5102, _on, C["REG"])
    if _key == "CUSTOM":   # its name is in the mirror's config (and the page's settings)
        FOLLOWED["DOCKER_MIRROR_CUSTOM_REGISTRY"] = ("other.example.com", _on, C["REG"])
    FOLLOWED[f"DOCKER_MIRROR_{_key}_REMOTE_URL"] = ("http://127.0.0.1:12", _on, C["REG"])
    FOLLOWED[f"DOCKER_MIRROR_{_key}_USERNAME"] = ("bob", _on | {f"DOCKER_MIRROR_{_key}_PASSWORD": "pw"}, C["REG"])
    FOLLOWED[f"DOCKER_MIRROR_{_key}_PASSWORD"] = ("pw2", _on | {f"DOCKER_MIRROR_{_key}_USERNAME": "bob",
                                                               f"DOCKER_MIRROR_{_key}_PASSWORD": "pw"}, C["REG"])

_WARM = ("read by each refresh and `make docker-mirror-pull`, new processes that read .config "
         "afresh; the page shows it from its settings, so it is restarted too")
NO_RESTART = {
    "HOST_HAS_DOCKER_MIRROR_DIR": "a host probe: only chooses Kconfig defaults when .config is written",
    "HOST_HAS_DOCKER_MIRROR_RUNNING": "a host probe: only chooses Kconfig defaults when .config is written",
    "HOST_HAS_DOCKER_ENGINE": "a host probe: only chooses Kconfig defaults when .config is written",
    "HOST_HAS_SYSTEMD": "a host probe: only chooses Kconfig defaults when .config is written",
    "DOCKER_MIRROR_AUTO_DETECT": "read by `make docker-mirror-clients` and the image rewriting, on the clients",
    "USE_DOCKER_MIRROR": "read by `make docker-mirror-clients` and the image rewriting, on the clients",
    "DOCKER_MIRROR_CLIENT_USERNAME": "what `make docker-mirror-clients` writes for the clients; the "
                                     "mirror reads the htpasswd file, which holds that user",
    "DOCKER_MIRROR_CLIENT_PASSWORD": "what `make docker-mirror-clients` writes for the clients; the "
                                     "mirror reads the htpasswd file, which holds that user",
    **{f"DOCKER_MIRROR_IMAGE_{name}": _WARM for name in (
        "MINIO", "MINIO_TAG", "MILVUS", "MILVUS_TAG", "ETCD", "ETCD_TAG", "VLLM_OPENAI", "VLLM_OPENAI_TAG",
        "VLLM_CPU", "VLLM_CPU_TAG", "VLLM_ROUTER", "VLLM_ROUTER_TAG", "LMCACHE", "LMCACHE_TAG",
        "LMCACHE_NIGHTLY", "LMCACHE_NIGHTLY_TAG", "REGISTRY")},
    "DOCKER_MIRROR_IMAGES_EXTRA_LIST": _WARM,
    "DOCKER_MIRROR_PULL_CONCURRENCY": _WARM,
    "DOCKER_MIRROR_PULL_ALL_PLATFORMS": _WARM,
    "DOCKER_MIRROR_LOG_RETENTION_DAYS": "applied by each refresh when it prunes its logs (a new process)",
    "DOCKER_MIRROR_KEEP_UNUSED_DAYS": "read by the collection after each warm and by `make docker-mirror-gc`",
    "DOCKER_MIRROR_CACHE_MAX_SIZE_GB": "read by the collection after each warm and by `make docker-mirror-gc`",
    "DOCKER_MIRROR_KEEP_PREVIOUS_DIGESTS": "read by the collection after each warm and by `make docker-mirror-gc`",
    "DOCKER_MIRROR_GC_MEMORY_MB": "the limit of the one-shot garbage-collect container, made anew by each collection",
}
# The values the NO_RESTART options are changed to (checked to touch no container, unit or export).
NO_RESTART_VALUES = {
    "DOCKER_MIRROR_AUTO_DETECT": (False, {}), "USE_DOCKER_MIRROR": (False, {}),
    "DOCKER_MIRROR_CLIENT_USERNAME": ("carol", dict(DOCKER_MIRROR_HTPASSWD=True,
                                                    DOCKER_MIRROR_HTPASSWD_PATH="{file:htpasswd}",
                                                    DOCKER_MIRROR_CLIENT_PASSWORD="pw")),
    "DOCKER_MIRROR_CLIENT_PASSWORD": ("pw9", dict(DOCKER_MIRROR_HTPASSWD=True,
                                                  DOCKER_MIRROR_HTPASSWD_PATH="{file:htpasswd}",
                                                  DOCKER_MIRROR_CLIENT_USERNAME="carol",
                                                  DOCKER_MIRROR_CLIENT_PASSWORD="pw")),
    "DOCKER_MIRROR_IMAGE_MINIO": (False, {}), "DOCKER_MIRROR_IMAGE_MINIO_TAG": ("RELEASE.2025", {}),
    "DOCKER_MIRROR_IMAGES_EXTRA_LIST": ("{file:images.txt}", {}),
    "DOCKER_MIRROR_PULL_CONCURRENCY": (7, {}), "DOCKER_MIRROR_PULL_ALL_PLATFORMS": (True, {}),
    "DOCKER_MIRROR_LOG_RETENTION_DAYS": (9, {}), "DOCKER_MIRROR_KEEP_UNUSED_DAYS": (9, {}),
    "DOCKER_MIRROR_CACHE_MAX_SIZE_GB": (9, {}), "DOCKER_MIRROR_KEEP_PREVIOUS_DIGESTS": (3, {}),
    "DOCKER_MIRROR_GC_MEMORY_MB": (640, {}),
}


def tree_options() -> set[str]:
    tree = defaults._tree()
    return {name for name, sym in tree.syms.items() if sym.orig_type != kconfiglib.UNKNOWN and sym.nodes}


def test_every_option_of_the_tree_is_followed_or_explained():
    options = tree_options()
    both = set(FOLLOWED) & set(NO_RESTART)
    assert not both, f"in both tables: {sorted(both)}"
    missing = options - set(FOLLOWED) - set(NO_RESTART)
    assert not missing, (f"new Kconfig options {sorted(missing)}: add each to FOLLOWED (the running parts "
                         "that must take it up, and a test in tests/test_setting_applied.py when it "
                         "needs one) or to NO_RESTART (why nothing running reads it)")
    gone = (set(FOLLOWED) | set(NO_RESTART)) - options
    assert not gone, f"no longer options of the tree: {sorted(gone)}"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The test's own files: htpasswd files, two certificate pairs, a CA bundle, an image list."""
    root = tmp_path_factory.mktemp("files")
    import bcrypt
    for name, password in (("htpasswd", b"pw1"), ("htpasswd2", b"pw2")):
        (root / name).write_text(f"alice:{bcrypt.hashpw(password, bcrypt.gensalt(4)).decode()}\n")
    for suffix in ("", "2"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(root / f"key{suffix}.pem"), "-out", str(root / f"cert{suffix}.pem"),
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
    (root / "ca.pem").write_text((root / "cert2.pem").read_text())
    (root / "images.txt").write_text("docker.io/library/busybox:1\n")
    return root


def resolve(value, files, tmp_path):
    if isinstance(value, str) and value.startswith("{file:"):
        return str(files / value[6:-1])
    if isinstance(value, str) and value.startswith("{dir:"):
        return str(tmp_path / value[5:-1])
    return value


def load(tmp_path, files, values: dict):
    values = {k: resolve(v, files, tmp_path) for k, v in values.items()}
    base = dict(DOCKER_MIRROR_PATH=str(tmp_path / "mirror"), DOCKER_MIRROR_PORT=5100,
                DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=HUB, DOCKER_MIRROR_REFRESH=False)
    return settings_mod.load(write_config(tmp_path / ".config", **{**base, **values}))


def changes(symbol, value) -> dict:
    return dict(value) if isinstance(value, CHANGES) else {symbol: value}


def fingerprints(settings) -> dict[str, object]:
    """What each running part would be made from: each changes exactly when it must be
    re-created, restarted or rewritten (what the product compares, computed its way)."""
    found = dict.fromkeys(PARTS)
    if settings.enabled and settings.install:
        layout = Layout.of(settings)
        credential.ensure(settings, layout)
        tls.ensure(settings)
        # The image's id is in every container's hash: another image is another id.
        ref = f"{settings.registry_image} built={settings.registry_built}"
        image = RegistryImage(ref, "sha256:" + hashlib.sha256(ref.encode()).hexdigest(), 2,
                              "/etc/docker/registry/config.yml", settings.registry_built)
        modes = {u.key: choose_mode(settings.pull_through, True) for u in settings.upstreams}   # upstreams up
        # the config hash, and the limits apply() compares with the container's own
        found[REGISTRY] = sorted((s.name, s.config_hash, repr(getattr(s, "limits", None)))
                                 for s in containers.plan(settings, layout, image, modes, "secret"))
        if settings.replicas.enabled:
            found[SHARED] = sorted((s.name, s.config_text, s.ports, repr(getattr(s, "limits", None)))
                                   for s in replicas.plan(settings, layout).values())
        found[NFS] = render.nfs_exports(settings) if settings.nfs_export else None
    found[SERVICES] = inputs.digest(settings)
    found[UNITS] = json.dumps(render.unit_files(settings, python="/usr/bin/python3", workdir="/srv",
                                                config_path=settings.config_path), sort_keys=True) \
        if settings.enabled and settings.install else None
    return found


@pytest.mark.parametrize("symbol", sorted(FOLLOWED))
def test_a_changed_option_changes_what_its_running_parts_are_made_from(symbol, tmp_path, files):
    value, context, parts = FOLLOWED[symbol]
    before = fingerprints(load(tmp_path, files, context))
    after = fingerprints(load(tmp_path, files, {**context, **changes(symbol, value)}))
    unchanged = [part for part in parts if before[part] == after[part]]
    assert not unchanged, f"{symbol}={value!r} leaves {unchanged} as they were: it would never be applied"


@pytest.mark.parametrize("symbol", sorted(NO_RESTART_VALUES))
def test_an_option_needing_no_restart_changes_no_container_unit_or_export(symbol, tmp_path, files):
    value, context = NO_RESTART_VALUES[symbol]
    before = fingerprints(load(tmp_path, files, context))
    after = fingerprints(load(tmp_path, files, {**context, **changes(symbol, value)}))
    changed = [part for part in (REGISTRY, SHARED, UNITS, NFS) if before[part] != after[part]]
    assert not changed, f"{symbol} changes {changed}: move it to FOLLOWED ({NO_RESTART[symbol]!r} is not so)"


def test_a_file_changed_in_place_changes_what_the_parts_are_made_from(tmp_path, files):
    """The bytes count, not the path: a password changed in the htpasswd file, a certificate
    re-issued into the same file, a CA bundle replaced."""
    users, cert, key, bundle = (tmp_path / n for n in ("users", "cert.pem", "key.pem", "bundle.pem"))
    users.write_text((files / "htpasswd").read_text())
    cert.write_text((files / "cert.pem").read_text())
    key.write_text((files / "key.pem").read_text())
    bundle.write_text((files / "cert.pem").read_text())
    config = dict(GIVEN_TLS, **S3, DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(users),
                  DOCKER_MIRROR_TLS_CERTIFICATE=str(cert), DOCKER_MIRROR_TLS_KEY=str(key),
                  DOCKER_MIRROR_STORAGE_CA_BUNDLE=str(bundle))
    for path, other in ((users, "htpasswd2"), (cert, "cert2.pem"), (key, "key2.pem"), (bundle, "cert2.pem")):
        before = fingerprints(load(tmp_path, files, config))
        path.write_text((files / other).read_text())
        after = fingerprints(load(tmp_path, files, config))
        for part in (REGISTRY, SERVICES):
            assert before[part] != after[part], f"{path.name} changed in place leaves {part} as it was"


# Which FOLLOWED options tests/test_setting_applied.py changes on the engine, case by case (the
# case's test name), checking the running part behaves per the new value; and, for the rest, why
# another test runs them (their change re-creates a container like any change of its hash).
_UPSTREAM_OPTIONS = tuple(f"DOCKER_MIRROR_{key}{what}" for key in ("GHCR", "QUAY", "K8S", "CUSTOM")
                          for what in ("", "_PORT", "_REMOTE_URL", "_USERNAME", "_PASSWORD"))
ENGINE = {
    "test_htpasswd_on_closes_the_mirror_and_the_running_page": ("DOCKER_MIRROR_HTPASSWD",
                                                                "DOCKER_MIRROR_HTPASSWD_PATH"),
    "test_addresses_move_the_mirror_and_the_page": (
        "DOCKER_MIRROR_PORT", "DOCKER_MIRROR_BIND_ADDRESS", "DOCKER_MIRROR_CONTAINER_PREFIX",
        "DOCKER_MIRROR_OBSERVE_ADDRESS", "DOCKER_MIRROR_OBSERVE_PORT"),
    "test_a_given_certificate_replaced_in_place_is_served": (
        "DOCKER_MIRROR_TLS", "DOCKER_MIRROR_TLS_GIVEN", "DOCKER_MIRROR_TLS_CERTIFICATE", "DOCKER_MIRROR_TLS_KEY"),
    "test_a_generated_certificate_follows_the_client_address": ("DOCKER_MIRROR_TLS_GENERATE",
                                                                "DOCKER_MIRROR_CLIENT_ADDRESS"),
    "test_pull_through_off_makes_a_plain_registry": ("DOCKER_MIRROR_PULL_THROUGH_CACHE",),
    "test_upstreams_switched_on_and_repointed": (
        *_UPSTREAM_OPTIONS, "DOCKER_MIRROR_CUSTOM_REGISTRY", "DOCKER_MIRROR_DOCKERHUB_REMOTE_URL",
        "DOCKER_MIRROR_DOCKERHUB_USERNAME", "DOCKER_MIRROR_DOCKERHUB_PASSWORD"),
    "test_the_keeper_is_restarted_with_new_inputs_and_stopped_when_off": ("DOCKER_MIRROR_KEEPER",
                                                                          "DOCKER_MIRROR_RECHECK_INTERVAL"),
    "test_the_page_follows_its_own_options_and_stops_when_off": (
        "DOCKER_MIRROR_OBSERVE", "DOCKER_MIRROR_OBSERVE_INTERVAL", "DOCKER_MIRROR_OBSERVE_TEXTFILE_DIR"),
    "test_a_moved_directory_and_storage_are_mounted": ("DOCKER_MIRROR_PATH", "DOCKER_MIRROR_STORAGE_PATH"),
    "test_switched_off_takes_everything_down": ("ENABLE_DOCKER_MIRROR", "INSTALL_DOCKER_MIRROR"),
    "test_new_limits_are_the_running_mirrors": ("DOCKER_MIRROR_REGISTRY_MEMORY_MB",
                                                "DOCKER_MIRROR_CONTAINER_PIDS_LIMIT"),
    "test_another_registry_image_runs_the_mirror_and_back": ("DOCKER_MIRROR_REGISTRY_BUILT",
                                                             "DOCKER_MIRROR_REGISTRY_IMAGE"),
}
# Each citation names the test that runs the option and what it does with it: changed on a
# running (or failed) mirror and then `make docker-mirror`, or only set from a fresh setup (then
# that its change re-creates the part is the fingerprint test above, not the engine).
_S3_MOVED = ("tests/commands/test_s3_storage.py::test_pull_through_stores_in_the_bucket_and_serves_offline "
             "changes DOCKER_MIRROR_S3_BUCKET and _ROOT_DIRECTORY on the running mirror, `make docker-mirror`: "
             "what it stores then lands in the new bucket under the new prefix, not the old")
_FRESH_S3 = ("fresh setup only: tests/commands/test_s3_storage.py runs the mirror on SeaweedFS with it "
             "from its first `make docker-mirror`; no test changes it on a running mirror")
_FRESH_S3_DEFAULT = ("its default only (SeaweedFS takes any region, and path style): no engine test sets it "
                     "or changes it on a running mirror; tests/config/test_storage_s3.py checks the config text")
_FRESH_AZURE = ("fresh setup only: tests/commands/test_azure_storage.py runs the mirror on Azurite with it "
                "from its first `make docker-mirror`; no test changes it on a running mirror")
_CA_BUNDLE = ("tests/commands/test_storage_ca.py::test_the_registry_trusts_the_store_only_with_its_ca and "
              "test_azure_storage_ca.py::test_the_registry_trusts_azurite_only_with_its_ca set it after a "
              "`make docker-mirror` failed without it: the next one re-creates the container with the bundle "
              "mounted, and it serves")
_BACKEND = ("fresh setup only: tests/commands/test_s3_storage.py and test_azure_storage.py set each backend "
            "up from the first `make docker-mirror` (the filesystem is every other test's); no test switches "
            "backends on a running mirror")
_REDIRECT = ("fresh setup only: test_with_redirects_on_cached_layers_are_fetched_from_the_store in "
             "tests/commands/test_s3_storage.py and test_azure_storage.py; no test changes it on a running mirror")
_REPLICAS = ("tests/commands/test_replicas.py::test_three_replicas_behind_haproxy (and test_azure_replicas.py) "
             "change DOCKER_MIRROR_REPLICAS 3 -> 1 on the running mirror: HAProxy and Redis go, one container "
             "serves on the same port")
_LIMITS_SHARED = ("tests/commands/test_replicas.py::test_three_replicas_behind_haproxy changes it on the running "
                  "replicas, `make docker-mirror`: HAProxy's and Redis's HostConfig carry the new memory "
                  "(Redis's maxmemory follows), pulls go on")
_REFRESH_UNIT = "the refresh timer unit, on a systemd host: tests/test_systemd_host.py::"
ELSEWHERE = {
    "DOCKER_MIRROR_S3_BUCKET": _S3_MOVED, "DOCKER_MIRROR_S3_ROOT_DIRECTORY": _S3_MOVED,
    "DOCKER_MIRROR_S3_ENDPOINT": _FRESH_S3, "DOCKER_MIRROR_S3_ACCESS_KEY_ID": _FRESH_S3,
    "DOCKER_MIRROR_S3_SECRET_KEY": _FRESH_S3,
    "DOCKER_MIRROR_S3_REGION": _FRESH_S3_DEFAULT, "DOCKER_MIRROR_S3_PATH_STYLE": _FRESH_S3_DEFAULT,
    "DOCKER_MIRROR_AZURE_ACCOUNT_KEY": (
        "tests/commands/test_azure_storage_ca.py::test_the_registry_trusts_azurite_only_with_its_ca changes "
        "it from a key Azurite refuses (the registry panics, setup says so) to the right one: the next "
        "`make docker-mirror` re-creates the mirror, which serves and stores in the container"),
    "DOCKER_MIRROR_AZURE_ACCOUNT_NAME": _FRESH_AZURE, "DOCKER_MIRROR_AZURE_CONTAINER": _FRESH_AZURE,
    "DOCKER_MIRROR_AZURE_REALM": _FRESH_AZURE,
    "DOCKER_MIRROR_STORAGE_FILESYSTEM": _BACKEND, "DOCKER_MIRROR_STORAGE_S3": _BACKEND,
    "DOCKER_MIRROR_STORAGE_AZURE": _BACKEND, "DOCKER_MIRROR_STORAGE_CA_BUNDLE": _CA_BUNDLE,
    "DOCKER_MIRROR_STORAGE_REDIRECT": _REDIRECT,
    "DOCKER_MIRROR_REPLICAS": _REPLICAS,
    "DOCKER_MIRROR_REPLICA_PORT_BASE": ("fresh setup only: tests/commands/test_replicas.py and the other "
                                        "replica tests set a free block at the first `make docker-mirror`; "
                                        "no test moves it on running replicas"),
    "DOCKER_MIRROR_HAPROXY_MEMORY_MB": _LIMITS_SHARED, "DOCKER_MIRROR_REDIS_MEMORY_MB": _LIMITS_SHARED,
    "DOCKER_MIRROR_TLS_CA_CERTIFICATE": (
        "nothing running serves it: `make docker-mirror-clients` hands it to the clients "
        "(tests/commands/test_clients_tls.py::test_a_given_certificate_s_ca_is_handed_out_the_same_way); the "
        "status page shows it, and every case of tests/test_setting_applied.py checks the page runs with "
        "the inputs of now (the fingerprint test above: the CA is one of them); no test changes it on a "
        "running page"),
    "DOCKER_MIRROR_REFRESH": ("the refresh timer unit: tests/test_systemd_host.py installs and schedules it "
                              "from a fresh setup (test_units_installed_enabled_and_timer_scheduled), and "
                              "tests/test_docker_mirror.py::test_first_setup_starts_a_background_refresh "
                              "without systemd; no test switches it on a running host"),
    "DOCKER_MIRROR_REFRESH_ON_CALENDAR": _REFRESH_UNIT + "test_timer_runs_the_refresh_when_due changes it on "
                                                         "the running host, `make docker-mirror`: the timer "
                                                         "fires at the new time",
    "DOCKER_MIRROR_REFRESH_RANDOM_DELAY": _REFRESH_UNIT + "test_refresh_random_delay_comes_from_kconfig "
                                                          "changes it 0 -> 7 -> 0, `make docker-mirror`: "
                                                          "systemd's RandomizedDelayUSec follows",
    "DOCKER_MIRROR_NFS_EXPORT": ("the exports file, rewritten at every setup when it differs, and exportfs "
                                 "asked to read it (host.nfs.export): no engine test (it needs an NFS "
                                 "server); tests/host/test_instances.py::test_nfs_exports_file_per_prefix "
                                 "writes the file without exportfs"),
    "DOCKER_MIRROR_NFS_CLIENTS": "the exports file (see DOCKER_MIRROR_NFS_EXPORT)",
}


def test_every_followed_option_runs_on_the_engine_or_says_where():
    on_engine = {name for names in ENGINE.values() for name in names}
    assert on_engine <= set(FOLLOWED), on_engine - set(FOLLOWED)
    assert not on_engine & set(ELSEWHERE), on_engine & set(ELSEWHERE)
    missing = set(FOLLOWED) - on_engine - set(ELSEWHERE)
    assert not missing, (f"{sorted(missing)}: change each in a case of tests/test_setting_applied.py "
                         "(and ENGINE), or say in ELSEWHERE which test runs it")
