"""DOCKER_MIRROR_TLS: a certificate generated here or given, through the real Kconfig tools;
a .config from before the choice keeps the certificate it names."""

import pytest

from mirror.config import settings as settings_mod
from mirror.errors import ConfigError
from support.configs import write_config


def load(tmp_path, olddefconfig=True, **values):
    path = write_config(tmp_path / ".config", olddefconfig=olddefconfig,
                        DOCKER_MIRROR_PATH=str(tmp_path / "m"), **values)
    return settings_mod.load(path), path.read_text()


def test_tls_on_without_a_certificate_is_generated(tmp_path):
    loaded, text = load(tmp_path, DOCKER_MIRROR_TLS=True)
    assert "CONFIG_DOCKER_MIRROR_TLS_GENERATE=y" in text
    assert loaded.tls_generate
    root = tmp_path / "m" / "tls"
    assert (loaded.tls_certificate, loaded.tls_key, loaded.tls_ca) == (
        f"{root}/server.crt", f"{root}/server.key", f"{root}/ca.crt")
    assert loaded.upstreams[0].endpoint.url.startswith("https://")


def test_an_old_config_with_a_certificate_keeps_it(tmp_path):
    # written before the choice existed: TLS on and a certificate path, no choice symbols
    loaded, text = load(tmp_path, DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_CERTIFICATE="/etc/ssl/m.pem",
                        DOCKER_MIRROR_TLS_KEY="/etc/ssl/m.key")
    assert "CONFIG_DOCKER_MIRROR_TLS_GIVEN=y" in text
    assert not loaded.tls_generate and loaded.tls_ca is None
    assert (loaded.tls_certificate, loaded.tls_key) == ("/etc/ssl/m.pem", "/etc/ssl/m.key")
    # read as it is, without Kconfig's tools, the same
    unsynced, _ = load(tmp_path, olddefconfig=False, DOCKER_MIRROR_TLS=True,
                       DOCKER_MIRROR_TLS_CERTIFICATE="/etc/ssl/m.pem", DOCKER_MIRROR_TLS_KEY="/etc/ssl/m.key")
    assert unsynced.tls_certificate == "/etc/ssl/m.pem" and not unsynced.tls_generate


def test_generated_wins_over_paths_left_in_the_config(tmp_path):
    loaded, _ = load(tmp_path, DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_GENERATE=True,
                     DOCKER_MIRROR_TLS_GIVEN=False, DOCKER_MIRROR_TLS_CERTIFICATE="/etc/ssl/m.pem")
    assert loaded.tls_generate and loaded.tls_certificate.endswith("/tls/server.crt")


def test_given_without_a_certificate_names_the_symbol(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_GIVEN=True, DOCKER_MIRROR_TLS_GENERATE=False)
    assert err.value.symbol == "CONFIG_DOCKER_MIRROR_TLS_CERTIFICATE"
    assert "absolute path" in str(err.value) and ".config:" in str(err.value)


def test_tls_off_has_no_files(tmp_path):
    loaded, _ = load(tmp_path)
    assert (loaded.tls_certificate, loaded.tls_ca, loaded.tls_generate) == (None, None, False)


def test_the_fleet_gets_the_ca_file_only_when_there_is_one(tmp_path):
    from mirror.config import extra_vars
    loaded, _ = load(tmp_path, DOCKER_MIRROR_TLS=True)
    assert extra_vars.playbook_variables(loaded)["docker_mirror_ca_file"] == loaded.tls_ca
    given, _ = load(tmp_path, DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_CERTIFICATE="/etc/ssl/m.pem",
                    DOCKER_MIRROR_TLS_KEY="/etc/ssl/m.key")
    assert "docker_mirror_ca_file" not in extra_vars.playbook_variables(given)
