"""extra_vars.yaml: every symbol, typed, round-tripping hostile strings exactly."""

import os
import stat
import subprocess
import time

import yaml
from hypothesis import example, given, settings as hsettings, strategies as st

from mirror import render
from mirror.config import dotconfig, extra_vars
from mirror.config.kconfig import ROOT
from support.configs import QUIET_PROBES, config_line, write_config

HOSTILE = ['a "quoted" value', "key: value", "# not a comment", "trailing\\", "\\\"",
           "yes", "no", "on", "off", "~", "null", "1e3", "0x10", "010", "12:30:45",
           "- item", "[a, b]", "{a: b}", "&anchor", "*alias", "!tag", "%percent", "@at",
           "`tick`", "|", ">", " leading space", "trailing space ", "", "'single'",
           "tab\there", "unicode ☃ ünï", "nel\x85", "ls\u2028", "ctl\x1b\x07", "vt\x0b"]

# .config lines cannot hold \n or \r (kconfiglib reads line by line); surrogates are not text.
config_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"))


def config_with(tmp_path, value: str) -> dotconfig.DotConfig:
    path = write_config(tmp_path / ".config")
    with path.open("a", encoding="utf-8") as out:
        out.write(config_line("DOCKER_MIRROR_REGISTRY_IMAGE_NOTE", value) + "\n")
    return dotconfig.load(path)


@hsettings(max_examples=200, deadline=None)
@given(value=config_text)
@example(value="")
def test_config_strings_round_trip_through_extra_vars(tmp_path_factory, value):
    tmp_path = tmp_path_factory.getbasetemp()
    config = config_with(tmp_path, value)
    assert config.entries["DOCKER_MIRROR_REGISTRY_IMAGE_NOTE"].value == value
    out = extra_vars.write(config, tmp_path / "extra_vars.yaml")
    loaded = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert loaded["docker_mirror_registry_image_note"] == value


@hsettings(max_examples=300, deadline=None)
@given(values=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True),
                              st.one_of(st.text(), st.booleans(), st.integers()), max_size=8))
def test_any_value_round_trips_through_the_yaml_template(values):
    text = render.render("extra_vars.yaml.j2", source=".config", variables=values)
    assert (yaml.safe_load(text) or {}) == values


def test_hostile_strings_round_trip(tmp_path):
    for n, value in enumerate(HOSTILE):
        config = config_with(tmp_path, value)
        out = extra_vars.write(config, tmp_path / f"ev{n}.yaml")
        assert yaml.safe_load(out.read_text(encoding="utf-8"))[
            "docker_mirror_registry_image_note"] == value, value


def test_types_and_names(tmp_path):
    config = dotconfig.load(write_config(tmp_path / ".config"))
    loaded = yaml.safe_load(extra_vars.write(config, tmp_path / "ev.yaml").read_text())
    assert loaded["enable_docker_mirror"] is True
    assert loaded["docker_mirror_ghcr"] is False
    assert loaded["docker_mirror_port"] == 5000
    assert loaded["docker_mirror_path"] == "/mirror/docker"
    symbols = {name.lower() for name in config.entries}
    assert symbols <= set(loaded)
    assert set(loaded) - symbols == {"docker_mirror_address", "docker_mirror_ports", "docker_mirror_urls"}


def test_mode_0600_only_when_it_holds_a_secret(tmp_path):
    plain = dotconfig.load(write_config(tmp_path / "plain.config"))
    path = extra_vars.write(plain, tmp_path / "plain.yaml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    secret = dotconfig.load(write_config(tmp_path / "secret.config",
                                         DOCKER_MIRROR_DOCKERHUB_PASSWORD="s3cret"))
    path = extra_vars.write(secret, tmp_path / "secret.yaml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "plain.config", "plain.yaml", "secret.config", "secret.yaml"]  # no temp files left


def test_make_regenerates_when_config_changes(tmp_path):
    config = write_config(tmp_path / ".config")
    out = tmp_path / "extra_vars.yaml"
    env = {**os.environ, **QUIET_PROBES, "KCONFIG_CONFIG": str(config), "EXTRA_VARS": str(out)}

    def make():
        return subprocess.run(["make", "-s", str(out)], cwd=ROOT, env=env, check=True,
                              capture_output=True, text=True)

    make()
    assert yaml.safe_load(out.read_text())["docker_mirror_port"] == 5000
    first = out.stat().st_mtime_ns
    assert make().stdout == ""  # up to date: not rewritten
    assert out.stat().st_mtime_ns == first
    time.sleep(0.01)
    write_config(config, DOCKER_MIRROR_PORT=5123)
    os.utime(config, ns=(first + 10**9, first + 10**9))
    make()
    assert yaml.safe_load(out.read_text())["docker_mirror_port"] == 5123


def test_invalid_config_writes_nothing(tmp_path):
    out = tmp_path / "extra_vars.yaml"
    out.write_text("previous: true\n")
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_PORT=0)
    os.utime(config, ns=(out.stat().st_mtime_ns + 10**9,) * 2)
    env = {**os.environ, "KCONFIG_CONFIG": str(config), "EXTRA_VARS": str(out)}
    result = subprocess.run(["make", "-s", str(out)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "CONFIG_DOCKER_MIRROR_PORT=0" in result.stderr
    assert out.read_text() == "previous: true\n"
