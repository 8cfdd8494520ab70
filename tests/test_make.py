"""The Make targets: kernel-style help, and a clear word when .config is missing."""

import os
import subprocess

from mirror.config.kconfig import ROOT

TARGETS = ["help", "menuconfig", "oldconfig", "olddefconfig", "defconfig", "defconfig-%",
           "savedefconfig", "mirror", "docker-mirror", "docker-mirror-pull",
           "docker-mirror-status", "deps", "test", "extra_vars.yaml", "check",
           "docker-mirror-clients", "docker-mirror-clients-undo", "docker-mirror-distribute",
           "docker-mirror-restore", "docker-mirror-remove", "docker-mirror-gc",
           "docker-mirror-k8s", "engine", "docs"]


def make(*args, config, **env):
    return subprocess.run(["make", "-s", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "KCONFIG_CONFIG": str(config), **env}, timeout=120)


def test_help_lists_every_target_once(tmp_path):
    listed = [line.split()[0] for line in make("help", config=tmp_path / ".config").stdout.splitlines()]
    assert sorted(listed) == sorted(TARGETS)


def test_targets_needing_a_config_say_how_to_make_one(tmp_path):
    for target in ("docker-mirror", "docker-mirror-pull", "docker-mirror-status", "mirror",
                   "savedefconfig"):
        result = make(target, config=tmp_path / ".config")
        assert result.returncode != 0, target
        assert "run 'make defconfig'" in result.stderr, target
        assert "Traceback" not in result.stderr
