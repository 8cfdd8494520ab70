"""Every file holding a secret is 0600 whoever wrote it: kconfiglib's backup `.config.old`
(written by every save of menuconfig, oldconfig, olddefconfig), the minimal defconfig
savedefconfig writes, and a backup left 0644 by hand or by an older version."""

import os
import stat

from mirror.config import secrets
from support.configs import QUIET_PROBES, run_mirror, write_config

PASSWORD = "hunter2-upstream"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def with_password(tmp_path):
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_DOCKERHUB_USERNAME="bob",
                          DOCKER_MIRROR_DOCKERHUB_PASSWORD=PASSWORD)
    os.chmod(config, 0o644)      # written by hand, or by an editor, with the umask's mode
    return config


def drop_line(config, symbol):
    """An option's line gone (a .config from before it existed): olddefconfig saves again."""
    text = config.read_text()
    config.write_text("".join(line for line in text.splitlines(keepends=True)
                              if not line.startswith(f"CONFIG_{symbol}=")))


def test_a_save_keeps_both_the_config_and_its_backup_0600(tmp_path):
    config = with_password(tmp_path)
    old_umask = os.umask(0o022)
    try:
        drop_line(config, "DOCKER_MIRROR_LOG_RETENTION_DAYS")
        run_mirror("config", "olddefconfig", config=config, env=QUIET_PROBES)
        backup = tmp_path / ".config.old"
        assert PASSWORD in backup.read_text()           # kconfiglib kept the previous .config
        assert (mode(config), mode(backup)) == (0o600, 0o600)
        drop_line(config, "DOCKER_MIRROR_PULL_CONCURRENCY")
        os.chmod(config, 0o644)                         # edited by hand again
        run_mirror("config", "olddefconfig", config=config, env=QUIET_PROBES)   # a second save
        assert "CONFIG_DOCKER_MIRROR_PULL_CONCURRENCY=" in config.read_text()
        assert (mode(config), mode(backup)) == (0o600, 0o600)
    finally:
        os.umask(old_umask)


def test_the_minimal_defconfig_keeps_the_password_and_is_0600(tmp_path):
    config = with_password(tmp_path)
    out = tmp_path / "defconfig"
    run_mirror("config", "savedefconfig", "--out", str(out), config=config, env=QUIET_PROBES)
    assert PASSWORD in out.read_text()
    assert mode(out) == 0o600


def test_a_backup_left_readable_is_put_right_and_one_without_a_secret_left_alone(tmp_path):
    config = with_password(tmp_path)
    backup = tmp_path / ".config.old"
    backup.write_text(config.read_text())
    os.chmod(backup, 0o644)
    assert secrets.protect(config)
    assert (mode(config), mode(backup)) == (0o600, 0o600)
    plain = write_config(tmp_path / "plain.config")
    (tmp_path / "plain.config.old").write_text(plain.read_text())
    os.chmod(plain, 0o644)
    os.chmod(tmp_path / "plain.config.old", 0o644)
    assert not secrets.protect(plain)
    assert mode(plain) == mode(tmp_path / "plain.config.old") == 0o644
