"""Settings: every rejected input names its symbol, value, line and what is allowed."""

import re

import pytest

from mirror.config import settings
from mirror.model.settings import Storage
from mirror.engine import build
from mirror.errors import ConfigError, NotConfiguredError
from support.configs import run_mirror, write_config

GOOD_BCRYPT = "alice:$2y$05$" + "a" * 53


def load(tmp_path, olddefconfig=False, **overrides):
    return settings.load(write_config(tmp_path / ".config", olddefconfig=olddefconfig, **overrides))


def rejected(tmp_path, **overrides) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **overrides)
    return caught.value


def line_of(tmp_path, symbol) -> int:
    lines = (tmp_path / ".config").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(f"CONFIG_{symbol}="))


def test_defaults(tmp_path):
    s = load(tmp_path)
    assert (s.enabled, s.install, s.use, s.pull_through) == (True, True, True, True)
    assert (s.path, s.port, s.bind_address) == ("/mirror/docker", 5000, "127.0.0.1")
    assert [(u.registry, u.port, u.remote_url) for u in s.upstreams] == \
        [("docker.io", 5000, "https://registry-1.docker.io")]
    assert s.storage == Storage("filesystem", "/mirror/docker/registry")
    # The engine built here from distribution's source, named by this checkout's patches.
    assert s.registry_built
    assert s.registry_image == build.image_ref(build.current_key())
    assert re.fullmatch(r"docker-mirror/registry:2\.8\.2-dm\.[0-9a-f]{12}", s.registry_image)
    assert "docker.io/library/registry:2" in s.warm_images  # what a cluster runs (no registry has ours)
    assert "docker.io/minio/minio:RELEASE.2023-03-20T20-16-18Z" in s.warm_images
    assert (s.refresh_on_calendar, s.log_retention_days) == ("*-*-* 02:00:00", 30)
    with pytest.raises(Exception):
        s.port = 1  # immutable


def test_other_upstreams_take_consecutive_ports(tmp_path):
    s = load(tmp_path, olddefconfig=True, DOCKER_MIRROR_PORT=6000, DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_QUAY=True,
             DOCKER_MIRROR_K8S=True, DOCKER_MIRROR_CUSTOM=True,
             DOCKER_MIRROR_CUSTOM_REGISTRY="Registry.Example.com:8443",
             DOCKER_MIRROR_CUSTOM_REMOTE_URL="https://registry.example.com:8443",
             DOCKER_MIRROR_QUAY_PORT=7000)
    assert {u.registry: u.port for u in s.upstreams} == {
        "docker.io": 6000, "ghcr.io": 6001, "quay.io": 7000, "registry.k8s.io": 6003,
        "registry.example.com:8443": 6004}


def test_error_names_symbol_value_file_and_line(tmp_path):
    err = rejected(tmp_path, DOCKER_MIRROR_PORT=70000)
    line = line_of(tmp_path, "DOCKER_MIRROR_PORT")
    assert str(err) == (f"CONFIG_DOCKER_MIRROR_PORT=70000 ({tmp_path}/.config:{line}): "
                        "must be an integer from 1 to 65535")


@pytest.mark.parametrize("symbol, value, allowed", [
    ("DOCKER_MIRROR_PATH", "mirror/docker", "must be an absolute path"),
    ("DOCKER_MIRROR_PATH", "", "must be an absolute path"),
    ("DOCKER_MIRROR_PORT", 0, "from 1 to 65535"),
    ("DOCKER_MIRROR_PORT", "5000", "must be an integer"),
    ("DOCKER_MIRROR_BIND_ADDRESS", "localhost", "must be an IP address"),
    ("DOCKER_MIRROR_BIND_ADDRESS", "10.0.0.300", "must be an IP address"),
    ("DOCKER_MIRROR_DOCKERHUB_REMOTE_URL", "registry-1.docker.io", "http:// or https:// URL"),
    ("DOCKER_MIRROR_DOCKERHUB_REMOTE_URL", "ftp://registry-1.docker.io", "http:// or https:// URL"),
    ("DOCKER_MIRROR_DOCKERHUB_REMOTE_URL", "https://host:99999", "valid port"),
    ("DOCKER_MIRROR_DOCKERHUB_REMOTE_URL", "https:// spaced.example", "http:// or https:// URL"),
    ("DOCKER_MIRROR_REGISTRY_IMAGE", "Registry:2", "must be lowercase"),
    ("DOCKER_MIRROR_REGISTRY_IMAGE", "registry:", "tag must be"),
    ("DOCKER_MIRROR_IMAGE_MINIO_TAG", "bad tag", "valid image reference"),
    ("DOCKER_MIRROR_IMAGE_MINIO_TAG", "sha256:abc", "sha256:<64 hex digits>"),
    ("DOCKER_MIRROR_STORAGE_PATH", "relative/registry", "absolute path"),
    ("DOCKER_MIRROR_LOG_RETENTION_DAYS", 0, "from 1 to 3650"),
    ("DOCKER_MIRROR_PULL_CONCURRENCY", 65, "from 1 to 64"),
    ("DOCKER_MIRROR_IMAGES_EXTRA_LIST", "images.txt", "absolute path"),
    ("ENABLE_DOCKER_MIRROR", "y", "must be y or n"),
])
def test_rejected_values(tmp_path, symbol, value, allowed):
    # DOCKER_MIRROR_REGISTRY_IMAGE counts only with the built engine off.
    off = {"DOCKER_MIRROR_REGISTRY_BUILT": False} if symbol == "DOCKER_MIRROR_REGISTRY_IMAGE" else {}
    err = rejected(tmp_path, **off, **{symbol: value})
    assert err.symbol == f"CONFIG_{symbol}"
    assert err.value == value
    assert allowed in str(err)
    assert f"{tmp_path}/.config:" in str(err)


def test_upstream_ports_must_be_distinct(tmp_path):
    err = rejected(tmp_path, DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_QUAY=True,
                   DOCKER_MIRROR_QUAY_PORT=5001, DOCKER_MIRROR_GHCR_REMOTE_URL="https://ghcr.io",
                   DOCKER_MIRROR_QUAY_REMOTE_URL="https://quay.io")
    assert err.symbol == "CONFIG_DOCKER_MIRROR_QUAY_PORT"
    assert "already used by the ghcr mirror" in str(err)


def test_default_port_past_65535_is_rejected(tmp_path):
    err = rejected(tmp_path, DOCKER_MIRROR_PORT=65535, DOCKER_MIRROR_K8S=True,
                   DOCKER_MIRROR_K8S_REMOTE_URL="https://registry.k8s.io")
    assert err.symbol == "CONFIG_DOCKER_MIRROR_K8S_PORT"
    assert "65538" in str(err)


def test_custom_registry_needs_a_host_name(tmp_path):
    err = rejected(tmp_path, DOCKER_MIRROR_CUSTOM=True, DOCKER_MIRROR_CUSTOM_REGISTRY="myregistry",
                   DOCKER_MIRROR_CUSTOM_REMOTE_URL="https://myregistry")
    assert err.symbol == "CONFIG_DOCKER_MIRROR_CUSTOM_REGISTRY"


def test_custom_registry_needs_a_remote_url(tmp_path):
    err = rejected(tmp_path, DOCKER_MIRROR_CUSTOM=True, DOCKER_MIRROR_CUSTOM_REGISTRY="r.example.com")
    assert err.symbol == "CONFIG_DOCKER_MIRROR_CUSTOM_REMOTE_URL"


@pytest.mark.parametrize("missing", ["ACCOUNT_NAME", "ACCOUNT_KEY", "CONTAINER"])
def test_azure_fields_are_required(tmp_path, missing):
    fields = {"DOCKER_MIRROR_AZURE_ACCOUNT_NAME": "acct", "DOCKER_MIRROR_AZURE_ACCOUNT_KEY": "c2VjcmV0",
              "DOCKER_MIRROR_AZURE_CONTAINER": "dockerregistry"}
    fields[f"DOCKER_MIRROR_AZURE_{missing}"] = ""
    err = rejected(tmp_path, DOCKER_MIRROR_STORAGE_FILESYSTEM=False,
                   DOCKER_MIRROR_STORAGE_AZURE=True, **fields)
    assert err.symbol == f"CONFIG_DOCKER_MIRROR_AZURE_{missing}"
    assert "required with the azure storage backend" in str(err)


def test_azure_storage_and_secrets_stay_out_of_repr(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_STORAGE_FILESYSTEM=False, DOCKER_MIRROR_STORAGE_AZURE=True,
             DOCKER_MIRROR_AZURE_ACCOUNT_NAME="acct", DOCKER_MIRROR_AZURE_ACCOUNT_KEY="TOPSECRETKEY",
             DOCKER_MIRROR_DOCKERHUB_USERNAME="bob", DOCKER_MIRROR_DOCKERHUB_PASSWORD="hunter2pass")
    assert s.storage.backend == "azure" and s.storage.azure_container == "dockerregistry"
    assert s.storage.azure_account_key == "TOPSECRETKEY"
    assert "TOPSECRETKEY" not in repr(s) and "hunter2pass" not in repr(s)


def test_htpasswd_bcrypt_accepted(tmp_path):
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(GOOD_BCRYPT + "\n")
    s = load(tmp_path, DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(htpasswd))
    assert s.htpasswd_path == str(htpasswd)


@pytest.mark.parametrize("entry, kind", [
    ("bob:$apr1$abcdefgh$0123456789abcdefghijkl", "md5"),
    ("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "sha1"),
    ("bob:plaintextpassword", "plain"),
    ("bob:abJnggxhB/yWI", "crypt"),
])
def test_htpasswd_non_bcrypt_rejected_without_leaking_the_hash(tmp_path, entry, kind):
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(GOOD_BCRYPT + "\n" + entry + "\n")
    err = rejected(tmp_path, DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(htpasswd))
    assert err.symbol == "CONFIG_DOCKER_MIRROR_HTPASSWD_PATH"
    assert "line 2 (user 'bob') is not a bcrypt entry" in str(err)
    assert entry.split(":", 1)[1] not in str(err)


def test_htpasswd_missing_file(tmp_path):
    err = rejected(tmp_path, DOCKER_MIRROR_HTPASSWD=True,
                   DOCKER_MIRROR_HTPASSWD_PATH=str(tmp_path / "absent"))
    assert "readable htpasswd file" in str(err)


def test_htpasswd_without_users(tmp_path):
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("# nobody yet\n")
    err = rejected(tmp_path, DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(htpasswd))
    assert "holds no user" in str(err)


def test_tls_paths_must_be_absolute(tmp_path):
    err = rejected(tmp_path, DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_CERTIFICATE="cert.pem",
                   DOCKER_MIRROR_TLS_KEY="/k.pem")
    assert err.symbol == "CONFIG_DOCKER_MIRROR_TLS_CERTIFICATE"


def test_nfs_clients_required_and_checked(tmp_path):
    assert rejected(tmp_path, DOCKER_MIRROR_NFS_EXPORT=True).symbol == "CONFIG_DOCKER_MIRROR_NFS_CLIENTS"
    err = rejected(tmp_path, DOCKER_MIRROR_NFS_EXPORT=True,
                   DOCKER_MIRROR_NFS_CLIENTS="10.0.0.0/8 *(rw,no_root_squash)")
    assert err.value == "*(rw,no_root_squash)"
    ok = load(tmp_path, DOCKER_MIRROR_NFS_EXPORT=True, DOCKER_MIRROR_NFS_CLIENTS="10.0.0.0/8 host.lan")
    assert ok.nfs_clients == ("10.0.0.0/8", "host.lan")


def test_on_calendar_must_be_one_line(tmp_path):
    err = rejected(tmp_path, DOCKER_MIRROR_REFRESH_ON_CALENDAR="")
    assert "OnCalendar" in str(err)


def test_unreadable_dotconfig_line_names_file_and_line(tmp_path):
    path = write_config(tmp_path / ".config")
    with path.open("a") as out:
        out.write("CONFIG_DOCKER_MIRROR_PORT=5000 # trailing\n")
    n = len(path.read_text().splitlines())
    with pytest.raises(Exception, match=re.escape(f"{path}:{n}: cannot read")):
        settings.load(path)


def test_missing_dotconfig_says_how_to_make_one(tmp_path):
    with pytest.raises(NotConfiguredError, match="make defconfig"):
        settings.load(tmp_path / ".config")


def test_cli_reports_errors_without_traceback(tmp_path):
    path = write_config(tmp_path / ".config", DOCKER_MIRROR_PORT=99999)
    result = run_mirror("check", config=path, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: CONFIG_DOCKER_MIRROR_PORT=99999 (")
    assert "must be an integer from 1 to 65535" in result.stderr


def test_refresh_random_delay(tmp_path):
    assert load(tmp_path).refresh_random_delay == 15
    assert load(tmp_path, DOCKER_MIRROR_REFRESH_RANDOM_DELAY=0).refresh_random_delay == 0
    assert load(tmp_path, DOCKER_MIRROR_REFRESH_RANDOM_DELAY=720).refresh_random_delay == 720
    err = rejected(tmp_path, DOCKER_MIRROR_REFRESH_RANDOM_DELAY=721)
    assert err.symbol == "CONFIG_DOCKER_MIRROR_REFRESH_RANDOM_DELAY"
    assert err.allowed == "must be an integer from 0 to 720"


def test_each_upstream_endpoint_is_derived_once_from_port_bind_and_tls(tmp_path):
    cert = tmp_path / "cert.pem"
    s = load(tmp_path, olddefconfig=True, DOCKER_MIRROR_PORT=6000, DOCKER_MIRROR_BIND_ADDRESS="::",
             DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_CERTIFICATE=str(cert),
             DOCKER_MIRROR_TLS_KEY=str(cert))
    hub, ghcr = s.upstreams
    assert (hub.endpoint.listen, hub.endpoint.debug_listen, hub.endpoint.url) == \
        ("[::]:6000", "127.0.0.1:16000", "https://[::1]:6000")
    assert (ghcr.port, ghcr.endpoint.listen, ghcr.endpoint.debug_port) == (6001, "[::]:6001", 16001)
    assert s.client_host == "[::1]"


def test_a_copy_with_another_bind_address_is_refused(tmp_path):
    # The endpoints would still name the old address: build settings from .config instead.
    import dataclasses
    s = load(tmp_path)
    with pytest.raises(ValueError, match="from_dotconfig"):
        dataclasses.replace(s, bind_address="0.0.0.0")
    with pytest.raises(ValueError, match="from_dotconfig"):
        dataclasses.replace(s, tls_certificate="/etc/ssl/c.pem")


def test_a_debug_port_on_another_mirror_port_is_refused(tmp_path):
    err = rejected(tmp_path, olddefconfig=True, DOCKER_MIRROR_PORT=5000, DOCKER_MIRROR_GHCR=True,
                   DOCKER_MIRROR_GHCR_PORT=15000)
    assert err.symbol == "CONFIG_DOCKER_MIRROR_GHCR_PORT" and "debug port of the dockerhub mirror" in err.allowed


def test_a_switched_off_mirror_loads_with_kconfigs_defaults(tmp_path):
    # Kconfig writes none of the symbols inside `if ENABLE_DOCKER_MIRROR` then: `make check`,
    # status and the way out must still read such a .config.
    (tmp_path / ".config").write_text("# CONFIG_ENABLE_DOCKER_MIRROR is not set\n")
    s = settings.load(tmp_path / ".config")
    assert not s.enabled
    assert [(u.key, u.remote_url) for u in s.upstreams] == [("dockerhub", "https://registry-1.docker.io")]
    assert run_mirror("check", config=tmp_path / ".config").stdout.startswith(f"{tmp_path / '.config'}: OK (disabled")


def test_the_keeper_is_on_for_a_config_written_before_it_existed(tmp_path):
    path = write_config(tmp_path / ".config")
    lines = [line for line in path.read_text().splitlines() if "DOCKER_MIRROR_KEEPER" not in line]
    path.write_text("\n".join(lines) + "\n")
    assert settings.load(path).keeper                      # absent: Kconfig's default, y
    path.write_text(path.read_text() + "# CONFIG_DOCKER_MIRROR_KEEPER is not set\n")
    assert not settings.load(path).keeper                  # switched off: n


def test_a_config_naming_registry_2_moves_to_the_built_engine_and_back(tmp_path):
    # A .config from before the built engine: registry:2 written in it, no _BUILT symbol.
    path = write_config(tmp_path / ".config")
    lines = [line for line in path.read_text().splitlines() if "DOCKER_MIRROR_REGISTRY_" not in line]
    path.write_text("\n".join(lines) + '\nCONFIG_DOCKER_MIRROR_REGISTRY_IMAGE="registry:2"\n')
    assert settings.load(path).registry_built              # absent: Kconfig's default, y
    run_mirror("config", "olddefconfig", config=path)      # what make does when Kconfig is newer
    text = path.read_text()
    assert "CONFIG_DOCKER_MIRROR_REGISTRY_BUILT=y" in text
    assert "CONFIG_DOCKER_MIRROR_REGISTRY_IMAGE" not in text
    assert settings.load(path).registry_image == build.image_ref(build.current_key())
    # Switched off, the upstream image the user names is run (and kept warm).
    s = load(tmp_path, olddefconfig=True, DOCKER_MIRROR_REGISTRY_BUILT=False,
             DOCKER_MIRROR_REGISTRY_IMAGE="registry:3")
    assert (s.registry_built, s.registry_image) == (False, "docker.io/library/registry:3")
    assert "docker.io/library/registry:3" in s.warm_images
