"""The Kconfig tree: defaults, reachability, and the host probes behind auto-detection."""

import os
import subprocess
import sys
import time

import kconfiglib
import pytest

from mirror.config import dotconfig
from mirror.config.kconfig import KCONFIG, ROOT
from mirror.net import probes
from support.configs import QUIET_PROBES, run_mirror, write_config
from support.netfaults import dropping_address, other_http_service, silent_address


def parse_tree(env: dict | None = None) -> kconfiglib.Kconfig:
    """The tree as kconfiglib sees it, probes included, with `env` in the environment."""
    saved = dict(os.environ)
    os.environ.update({**QUIET_PROBES, **(env or {})})
    sys.path.insert(0, str(ROOT / "kconfig"))
    try:
        return kconfiglib.Kconfig(str(KCONFIG), warn_to_stderr=False)
    finally:
        sys.path.remove(str(ROOT / "kconfig"))
        os.environ.clear()
        os.environ.update(saved)


def make_config(tmp_path, name="default", env=None) -> dict:
    path = tmp_path / ".config"
    run_mirror("config", "defconfig", name, config=path, env={**QUIET_PROBES, **(env or {})})
    return {k: e.value for k, e in dotconfig.load(path).entries.items()}


def test_defconfig_values(tmp_path):
    values = make_config(tmp_path)
    assert values["ENABLE_DOCKER_MIRROR"] is True
    assert values["DOCKER_MIRROR_PORT"] == 5000
    assert values["DOCKER_MIRROR_PATH"] == "/mirror/docker"
    assert values["DOCKER_MIRROR_PULL_THROUGH_CACHE"] is True
    assert values["DOCKER_MIRROR_BIND_ADDRESS"] == "127.0.0.1"
    assert values["DOCKER_MIRROR_REGISTRY_BUILT"] is True
    assert "DOCKER_MIRROR_REGISTRY_IMAGE" not in values   # only with the built engine off
    assert values["DOCKER_MIRROR_DOCKERHUB_REMOTE_URL"] == "https://registry-1.docker.io"
    assert values["DOCKER_MIRROR_STORAGE_FILESYSTEM"] is True
    assert values["DOCKER_MIRROR_REFRESH_ON_CALENDAR"] == "*-*-* 02:00:00"
    assert values["DOCKER_MIRROR_LOG_RETENTION_DAYS"] == 30
    assert values["DOCKER_MIRROR_NFS_EXPORT"] is False
    for upstream in ("GHCR", "QUAY", "K8S", "CUSTOM"):
        assert values[f"DOCKER_MIRROR_{upstream}"] is False


def test_fresh_host_without_mirror_dir_still_installs(tmp_path):
    values = make_config(tmp_path, env={"DOCKER_MIRROR_PROBE_PATH": str(tmp_path / "no-such-dir")})
    assert values["INSTALL_DOCKER_MIRROR"] is True
    assert values["USE_DOCKER_MIRROR"] is True


def test_all_upstreams_defconfig(tmp_path):
    values = make_config(tmp_path, "all-upstreams")
    assert values["DOCKER_MIRROR_GHCR_REMOTE_URL"] == "https://ghcr.io"
    assert values["DOCKER_MIRROR_QUAY_REMOTE_URL"] == "https://quay.io"
    assert values["DOCKER_MIRROR_K8S_REMOTE_URL"] == "https://registry.k8s.io"
    assert values["DOCKER_MIRROR_IMAGE_ETCD"] is True


def test_every_option_is_reachable_and_documented():
    kconf = parse_tree()
    prompted = {s for s in kconf.unique_defined_syms if any(n.prompt for n in s.nodes)}
    visible = set()
    for backend in ("DOCKER_MIRROR_STORAGE_FILESYSTEM", "DOCKER_MIRROR_STORAGE_AZURE",
                    "DOCKER_MIRROR_STORAGE_S3"):
        kconf.unset_values()
        for _ in range(3):  # enabling a menu can reveal more bools
            for sym in prompted:
                if sym.type == kconfiglib.BOOL and sym.visibility and not sym.choice:
                    sym.set_value(2)
        kconf.syms[backend].set_value(2)
        for _ in range(3):
            for sym in prompted:
                if sym.type == kconfiglib.BOOL and sym.visibility and not sym.choice:
                    sym.set_value(2)
        visible |= {s for s in prompted if s.visibility}
        # Options shown when another is off (DOCKER_MIRROR_REGISTRY_IMAGE: the built engine off).
        for sym in [s for s in prompted if s.type == kconfiglib.BOOL and s.visibility and not s.choice]:
            before = sym.tri_value
            sym.set_value(0)
            visible |= {s for s in prompted if s.visibility}
            sym.set_value(before)
    assert sorted(s.name for s in prompted - visible) == []
    undocumented = [s.name for s in prompted if not any(n.help and "Default:" in n.help for n in s.nodes)
                    and not s.choice]
    assert undocumented == []


def test_broken_probe_module_fails_loudly():
    # mirror.net.probes unimportable: kconfiglib would swallow the ImportError.
    code = ("import sys; sys.modules['mirror.net.probes'] = None; sys.path.insert(0, 'kconfig');"
            "import kconfiglib; kconfiglib.Kconfig('Kconfig')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    assert "cannot import the probes" in result.stderr


def test_missing_probe_module_fails_loudly():
    result = subprocess.run(
        [sys.executable, "-c", "import kconfiglib; kconfiglib.Kconfig('Kconfig')"], cwd=ROOT,
        capture_output=True, text=True, env={**os.environ, "KCONFIG_FUNCTIONS": "no_such_module"})
    assert result.returncode != 0
    assert "kconfigfunctions.py was not loaded" in result.stderr


def test_probe_mirror_directory(tmp_path):
    assert parse_tree({"DOCKER_MIRROR_PROBE_PATH": str(tmp_path)}).syms[
        "HOST_HAS_DOCKER_MIRROR_DIR"].str_value == "y"
    assert parse_tree({"DOCKER_MIRROR_PROBE_PATH": str(tmp_path / "x")}).syms[
        "HOST_HAS_DOCKER_MIRROR_DIR"].str_value == "n"


def test_probe_real_registry_up_then_down(upstream):
    up = parse_tree({"DOCKER_MIRROR_PROBE_ADDRESS": upstream.host})
    assert up.syms["HOST_HAS_DOCKER_MIRROR_RUNNING"].str_value == "y"
    upstream.stop()
    down = parse_tree({"DOCKER_MIRROR_PROBE_ADDRESS": upstream.host})
    assert down.syms["HOST_HAS_DOCKER_MIRROR_RUNNING"].str_value == "n"


def test_detected_mirror_is_used_without_installing(tmp_path, upstream):
    path = write_config(tmp_path / ".config", INSTALL_DOCKER_MIRROR=False)
    for line in ("CONFIG_USE_DOCKER_MIRROR=y",):
        path.write_text(path.read_text().replace(line + "\n", ""))
    run_mirror("config", "olddefconfig", config=path,
               env={**QUIET_PROBES, "DOCKER_MIRROR_PROBE_ADDRESS": upstream.host})
    assert dotconfig.load(path).entries["USE_DOCKER_MIRROR"].value is True
    path.write_text(path.read_text().replace("CONFIG_USE_DOCKER_MIRROR=y\n", ""))
    run_mirror("config", "olddefconfig", config=path, env=QUIET_PROBES)
    assert dotconfig.load(path).entries["USE_DOCKER_MIRROR"].value is False


def test_probe_wrong_service_is_not_a_registry():
    with other_http_service() as (host, port):
        assert not probes.registry_answers(host, port)
        tree = parse_tree({"DOCKER_MIRROR_PROBE_ADDRESS": f"{host}:{port}"})
        assert tree.syms["HOST_HAS_DOCKER_MIRROR_RUNNING"].str_value == "n"


@pytest.mark.parametrize("fault", [dropping_address, silent_address])
def test_probe_is_time_bounded(fault):
    with fault() as (host, port):
        start = time.monotonic()
        assert not probes.registry_answers(host, port)
        assert time.monotonic() - start < probes.PROBE_TIMEOUT + 0.1


def test_olddefconfig_under_one_second_with_dropping_address(tmp_path):
    path = write_config(tmp_path / ".config")
    with dropping_address() as (host, port):
        env = {**os.environ, **QUIET_PROBES, "DOCKER_MIRROR_PROBE_ADDRESS": f"{host}:{port}",
               "KCONFIG_CONFIG": str(path)}
        start = time.monotonic()
        subprocess.run(["make", "-s", "olddefconfig"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        elapsed = time.monotonic() - start
    assert elapsed < 1.0, f"make olddefconfig took {elapsed:.2f} s"


def test_docker_engine_probe(docker_client):
    assert probes.docker_engine_answers()
    assert parse_tree().syms["HOST_HAS_DOCKER_ENGINE"].str_value == "y"


def test_savedefconfig_round_trips(tmp_path):
    for name in ("default", "all-upstreams"):
        config = tmp_path / f"{name}.config"
        run_mirror("config", "defconfig", name, config=config, env=QUIET_PROBES)
        saved = tmp_path / f"{name}.defconfig"
        run_mirror("config", "savedefconfig", "--out", str(saved), config=config, env=QUIET_PROBES)
        again = tmp_path / f"{name}.again"
        run_mirror("config", "defconfig", name, config=again, env=QUIET_PROBES)
        expected = {line for line in (ROOT / "defconfigs" / name).read_text().splitlines()
                    if line.startswith("CONFIG_")}
        assert {line for line in saved.read_text().splitlines() if line.startswith("CONFIG_")} == expected
        assert config.read_text() == again.read_text()
