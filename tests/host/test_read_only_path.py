"""DOCKER_MIRROR_PATH on a read-only file system (a real tmpfs mounted ro): a HostError
naming the symbol and the value, before anything starts, never an OSError traceback."""

import subprocess

import pytest

from mirror.config import settings
from mirror.errors import HostError
from mirror.host import layout as host_layout
from support.configs import write_config


@pytest.fixture
def mount_point(tmp_path):
    path = tmp_path / "fs"
    path.mkdir()
    yield path
    subprocess.run(["umount", str(path)], check=False, capture_output=True)


def _load(tmp_path, path):
    return settings.load(write_config(tmp_path / ".config", DOCKER_MIRROR_PATH=str(path)))


def test_a_read_only_mirror_directory_is_a_clear_host_error(tmp_path, mount_point):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount_point)], check=True)
    loaded = _load(tmp_path, mount_point / "docker")
    with pytest.raises(HostError) as caught:
        host_layout.ensure(host_layout.Layout.of(loaded), loaded, "")
    message = str(caught.value)
    assert message.startswith(f"DOCKER_MIRROR_PATH='{mount_point / 'docker'}': cannot write")
    assert "Read-only file system" in message


def test_a_laid_out_directory_made_read_only_later_is_caught_too(tmp_path, mount_point):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    loaded = _load(tmp_path, mount_point)
    layout = host_layout.Layout.of(loaded)
    host_layout.ensure(layout, loaded, "")        # writable: all laid out
    subprocess.run(["mount", "-o", "remount,ro", str(mount_point)], check=True)
    with pytest.raises(HostError, match="Read-only file system"):
        host_layout.ensure(layout, loaded, "")
