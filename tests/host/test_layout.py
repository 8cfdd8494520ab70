"""The mirror directory: where each file lives, and setting it up."""

import stat

from mirror.config import settings
from mirror.host import layout
from mirror.host.layout import Layout
from support.configs import write_config


def load(tmp_path, **overrides):
    return settings.load(write_config(tmp_path / ".config", olddefconfig=True,
                                      DOCKER_MIRROR_PATH=str(tmp_path / "m"), **overrides))


def test_paths_follow_the_kdevops_layout(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_GHCR=True)
    hub, ghcr = s.upstreams
    lay = Layout.of(s)
    root = tmp_path / "m"
    assert (lay.config_file(hub), lay.config_file(ghcr)) == (root / "config/config.yml", root / "config/ghcr.yml")
    assert (lay.storage_dir(hub), lay.storage_dir(ghcr)) == (root / "registry/dockerhub", root / "registry/ghcr")
    assert lay.manifest == root / "images/manifest.txt" and lay.archives_dir == root / "images/archives"
    assert lay.last_refresh == root / "logs/last-refresh.json"
    assert lay.http_secret == root / "config/http-secret"
    assert lay.clients_state == root / "config/clients-state.json"
    assert lay.maintenance_config(ghcr) == root / "config/.maintenance-ghcr.yml"


def test_storage_path_setting_moves_only_the_registry_data(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_STORAGE_PATH=str(tmp_path / "data"))
    lay = Layout.of(s)
    assert lay.storage_dir(s.upstreams[0]) == tmp_path / "data/dockerhub"
    assert lay.config_dir == tmp_path / "m/config"


def test_ensure_makes_the_tree_once_and_keeps_what_is_there(tmp_path):
    s = load(tmp_path)
    lay = Layout.of(s)
    layout.ensure(lay, s, "empty\n")
    for directory in (lay.config_dir, lay.archives_dir, lay.logs_dir, lay.storage_dir(s.upstreams[0])):
        assert directory.is_dir()
    assert lay.manifest.read_text() == "empty\n"
    lay.manifest.write_text("warmed\n")
    layout.ensure(lay, s, "empty\n")
    assert lay.manifest.read_text() == "warmed\n"


def test_http_secret_is_generated_once_and_private(tmp_path):
    lay = Layout.of(load(tmp_path))
    first = layout.http_secret(lay)
    assert len(first) >= 32 and layout.http_secret(lay) == first
    assert stat.S_IMODE(lay.http_secret.stat().st_mode) == 0o600
