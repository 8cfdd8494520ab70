"""Files holding a secret are 0600 whoever wrote them: kconfiglib's .config,
extra_vars.yaml with a remote URL's user:password@, a registry config.yml
left 0644 by an older version."""

import os
import stat
import types

from mirror.config import dotconfig, secrets
from mirror.engine import containers
from support.configs import QUIET_PROBES, run_mirror, write_config


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_olddefconfig_keeps_a_config_with_a_password_0600(tmp_path):
    path = write_config(tmp_path / ".config", DOCKER_MIRROR_DOCKERHUB_USERNAME="bob",
                        DOCKER_MIRROR_DOCKERHUB_PASSWORD="hunter2")
    os.chmod(path, 0o644)
    run_mirror("config", "olddefconfig", config=path, env=QUIET_PROBES)
    assert dotconfig.load(path).entries["DOCKER_MIRROR_DOCKERHUB_PASSWORD"].value == "hunter2"
    assert mode(path) == 0o600


def test_olddefconfig_leaves_a_config_without_secrets_alone(tmp_path):
    path = write_config(tmp_path / ".config")
    os.chmod(path, 0o644)
    run_mirror("config", "olddefconfig", config=path, env=QUIET_PROBES)
    assert mode(path) == 0o644


def test_a_remote_url_with_credentials_is_a_secret(tmp_path):
    path = write_config(tmp_path / ".config",
                        DOCKER_MIRROR_DOCKERHUB_REMOTE_URL="http://bob:hunter2@127.0.0.1:1")
    config = dotconfig.load(path)
    assert secrets.holds_secret(config)
    out = tmp_path / "extra_vars.yaml"
    run_mirror("extra-vars", "--out", str(out), config=path, env=QUIET_PROBES)
    assert mode(out) == 0o600
    assert not secrets.is_secret_value("X_REMOTE_URL", "http://127.0.0.1:1/a:b@c")  # '@' after the path
    assert secrets.is_secret_value("X_REMOTE_URL", "https://u:p@h")


def test_an_unchanged_registry_config_left_0644_becomes_0600(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("http:\n  secret: abc\n")
    os.chmod(path, 0o644)
    containers._write_config(types.SimpleNamespace(config_path=str(path), config_text=path.read_text()))
    assert mode(path) == 0o600
