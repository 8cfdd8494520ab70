"""Making .config files for tests, through the real Kconfig tools."""

import os
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from mirror.config.kconfig import ROOT
from mirror.errors import ConfigError


def run_mirror(*args, config=None, env=None, check=True, timeout=60, **kwargs) -> subprocess.CompletedProcess:
    """`python3 -m mirror ARGS` from the repo root, as make runs it."""
    argv = [sys.executable, "-m", "mirror"]
    if config is not None:
        argv += ["--config", str(config)]
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run([*argv, *args], cwd=ROOT, env=full_env, capture_output=True,
                            text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"mirror {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


# Probes pointed at places that hold nothing, so results do not depend on the host.
QUIET_PROBES = {"DOCKER_MIRROR_PROBE_PATH": "/nonexistent/docker-mirror",
                "DOCKER_MIRROR_PROBE_ADDRESS": "127.0.0.1:1"}


@lru_cache(maxsize=None)
def defconfig_text(name: str = "default", tmp_root: str = "/tmp") -> str:
    path = Path(tmp_root) / f"docker-mirror-test-{os.getpid()}-{name}.config"
    run_mirror("config", "defconfig", name, config=path, env=QUIET_PROBES)
    text = path.read_text()
    path.unlink()
    Path(f"{path}.old").unlink(missing_ok=True)
    return text


def quote(value: str) -> str:
    """A .config string literal, escaped as kconfiglib writes it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_line(symbol: str, value) -> str:
    if value is True:
        return f"CONFIG_{symbol}=y"
    if value is False:
        return f"# CONFIG_{symbol} is not set"
    if isinstance(value, int):
        return f"CONFIG_{symbol}={value}"
    return f"CONFIG_{symbol}={quote(value)}"


def write_config(path, base: str = "default", olddefconfig: bool = False, **overrides) -> Path:
    """A defconfig's .config with symbols replaced or added.

    With olddefconfig, Kconfig then fills in what the overrides made visible
    (and drops what they hid), as `make olddefconfig` would.
    """
    text = defconfig_text(base)
    for symbol, value in overrides.items():
        line = config_line(symbol, value)
        pattern = re.compile(rf"^(CONFIG_{symbol}=.*|# CONFIG_{symbol} is not set)$", re.M)
        text, found = pattern.subn(lambda _: line, text)
        if not found:
            text += line + "\n"
    path = Path(path)
    path.write_text(text)
    if olddefconfig:
        run_mirror("config", "olddefconfig", config=path, env=QUIET_PROBES)
    return path


def image_list(tmp_path, *lines) -> str:
    """An image list file of `lines` (DOCKER_MIRROR_IMAGES_EXTRA_LIST, `pull LIST`)."""
    path = tmp_path / "images.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def rejected_symbol(load, tmp_path, symbol: str, value, **overrides) -> ConfigError:
    """The ConfigError of `load(tmp_path, symbol=value, ...)`, checked to name the
    symbol and the .config line that set it."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **{symbol: value}, **overrides)
    err = caught.value
    assert err.symbol == f"CONFIG_{symbol}"
    lines = (tmp_path / ".config").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.startswith(f"CONFIG_{symbol}="))
    assert f".config:{line}" in str(err)
    return err


def with_status_page(settings):
    """`settings` with the metrics and status page on, on a free loopback port."""
    import dataclasses

    from support.upstream import free_port
    return dataclasses.replace(settings, observe=dataclasses.replace(settings.observe, enabled=True,
                                                                    port=free_port()))
