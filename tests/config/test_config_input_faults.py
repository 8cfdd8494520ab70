"""Bad characters and secrets in .config: refused by `check` with the symbol named,
the secret's value never echoed, nothing injected into generated files."""

import re

import yaml

from mirror.config import extra_vars, dotconfig
from support.configs import QUIET_PROBES, run_mirror, write_config


def check(path):
    return run_mirror("check", config=path, env=QUIET_PROBES, check=False)


def test_a_tab_cr_or_backslash_in_the_path_is_refused_by_check(tmp_path):
    for bad in ("/mirror/dock\ter", "/mirror/docker\r", "/mirror/docker\\"):
        result = check(write_config(tmp_path / ".config", DOCKER_MIRROR_PATH=bad))
        assert result.returncode == 2, bad
        assert "CONFIG_DOCKER_MIRROR_PATH=" in result.stderr and "Traceback" not in result.stderr
        # A CR ends the line as kconfiglib reads it: a syntax error naming file and line.
        assert "not ending in a backslash" in result.stderr or \
            re.search(r"\.config:\d+: cannot read 'CONFIG_DOCKER_MIRROR_PATH", result.stderr)


def test_a_tab_in_the_schedule_is_refused_by_check(tmp_path):
    result = check(write_config(tmp_path / ".config", DOCKER_MIRROR_REFRESH=True,
                                DOCKER_MIRROR_REFRESH_ON_CALENDAR="daily\t"))
    assert result.returncode == 2 and "CONFIG_DOCKER_MIRROR_REFRESH_ON_CALENDAR" in result.stderr


def test_a_bad_secret_value_is_never_echoed(tmp_path):
    path = write_config(tmp_path / ".config")
    with open(path, "a") as f:
        f.write("CONFIG_DOCKER_MIRROR_DOCKERHUB_PASSWORD=hunter2\n")
    result = check(path)
    assert result.returncode == 2 and "hunter2" not in result.stderr + result.stdout
    assert "CONFIG_DOCKER_MIRROR_DOCKERHUB_PASSWORD=<hidden>" in result.stderr
    bad_url = write_config(tmp_path / "u.config",
                           DOCKER_MIRROR_DOCKERHUB_REMOTE_URL="ftp://bob:hunter2@127.0.0.1:1")
    result = check(bad_url)
    assert result.returncode == 2 and "hunter2" not in result.stderr
    assert "CONFIG_DOCKER_MIRROR_DOCKERHUB_REMOTE_URL" in result.stderr


def test_a_config_file_name_with_a_newline_injects_nothing(tmp_path):
    path = write_config(tmp_path / "x\ninjected: 1\n.config")
    out = tmp_path / "extra_vars.yaml"
    extra_vars.write(dotconfig.load(path), out)
    loaded = yaml.safe_load(out.read_text())
    assert "injected" not in loaded and "docker_mirror_address" in loaded
