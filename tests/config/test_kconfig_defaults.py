"""The Kconfig tree is the one place defaults and ranges are written: settings read them there."""

import dataclasses

import kconfiglib
import pytest

from mirror.config import defaults, settings
from mirror.errors import ConfigError
from support.configs import write_config


def without_path(s):
    return dataclasses.replace(s, config_path="")


def test_a_config_that_lacks_every_option_reads_as_olddefconfig_writes_it(tmp_path):
    # What a symbol the .config lacks stands for is what olddefconfig would have written.
    bare = tmp_path / "bare.config"
    bare.write_text("CONFIG_ENABLE_DOCKER_MIRROR=y\n")
    full = write_config(tmp_path / "full.config", olddefconfig=True)
    assert without_path(settings.load(bare)) == without_path(settings.load(full))


def test_a_bool_whose_dependency_is_off_is_n(tmp_path):
    # etcd is kept warm by default, but only through the quay mirror, off by default.
    bare = tmp_path / ".config"
    bare.write_text("CONFIG_ENABLE_DOCKER_MIRROR=y\n")
    assert not any("etcd" in ref for ref in settings.load(bare).warm_images)
    bare.write_text("CONFIG_ENABLE_DOCKER_MIRROR=y\nCONFIG_DOCKER_MIRROR_QUAY=y\n")
    assert "quay.io/coreos/etcd:v3.5.18" in settings.load(bare).warm_images


def test_options_under_a_switched_off_menu_keep_their_kconfig_defaults(tmp_path):
    off = tmp_path / ".config"
    off.write_text("# CONFIG_ENABLE_DOCKER_MIRROR is not set\n")
    tree = defaults._tree()
    loaded = settings.load(off)
    assert not loaded.enabled
    assert loaded.port == int(tree.syms["DOCKER_MIRROR_PORT"].defaults[0][0].str_value)
    assert loaded.path == tree.syms["DOCKER_MIRROR_PATH"].defaults[0][0].str_value
    assert loaded.upstreams[0].remote_url == tree.syms["DOCKER_MIRROR_DOCKERHUB_REMOTE_URL"].defaults[0][0].str_value


def test_a_value_out_of_range_is_refused_with_the_trees_range(tmp_path):
    low, high = (kconfiglib.expr_str(b) for b in defaults._tree().syms["DOCKER_MIRROR_OBSERVE_INTERVAL"].ranges[0][:2])
    path = write_config(tmp_path / ".config", DOCKER_MIRROR_OBSERVE_INTERVAL=int(high) + 1)
    with pytest.raises(ConfigError, match=f"from {low} to {high}"):
        settings.load(path)


def test_a_conditional_default_follows_the_configs_own_values(tmp_path):
    # A .config from before the certificate choice keeps the certificate it names.
    path = tmp_path / ".config"
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    path.write_text("CONFIG_ENABLE_DOCKER_MIRROR=y\nCONFIG_DOCKER_MIRROR_TLS=y\n"
                    f'CONFIG_DOCKER_MIRROR_TLS_CERTIFICATE="{cert}"\nCONFIG_DOCKER_MIRROR_TLS_KEY="{key}"\n')
    assert not settings.load(path).tls_generate
    path.write_text("CONFIG_ENABLE_DOCKER_MIRROR=y\nCONFIG_DOCKER_MIRROR_TLS=y\n")
    assert settings.load(path).tls_generate


def test_a_symbol_the_tree_does_not_have_is_a_programming_error_not_a_default():
    with pytest.raises(KeyError, match="DOCKER_MIRROR_NO_SUCH_OPTION"):
        defaults.of(defaults.dotconfig.DotConfig("x", {})).default("DOCKER_MIRROR_NO_SUCH_OPTION")
