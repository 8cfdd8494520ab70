"""daemon.json as people keep it: a symlink (to a file under version control) stays a link
through docker-mirror-clients and its undo; an edit made while the clients run is not overwritten."""

import json

import pytest

from mirror.services import clients
from mirror.config import settings as settings_mod
from mirror.errors import ClientFileError
from mirror.host.client_files import ClientPaths
from mirror.model import client_config
from support.configs import write_config
from support.pullthrough import DEBIAN_CONTAINERD_CONFIG


def test_a_symlinked_daemon_json_stays_a_link_through_apply_and_undo(tmp_path):
    config = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PORT=15000,
                          DOCKER_MIRROR_PATH=str(tmp_path / "mirror"))
    settings = settings_mod.load(config)
    etc = tmp_path / "etc"
    (etc / "docker").mkdir(parents=True)
    kept = tmp_path / "dotfiles" / "daemon.json"
    kept.parent.mkdir()
    original = b'{"log-driver": "local"}\n'
    kept.write_bytes(original)
    link = etc / "docker/daemon.json"
    link.symlink_to(kept)
    paths = ClientPaths(daemon_json=link, docker_pid=tmp_path / "docker.pid",
                        containerd_config=etc / "containerd/config.toml", certs_dir=etc / "containerd/certs.d")

    clients.apply(settings, paths, reload=False)
    assert link.is_symlink() and link.resolve() == kept
    assert json.loads(kept.read_bytes())["registry-mirrors"] == ["http://127.0.0.1:15000"]

    clients.undo(settings, reload=False)
    assert link.is_symlink() and link.resolve() == kept
    assert kept.read_bytes() == original


def test_an_edit_between_plan_and_write_is_not_overwritten(tmp_path):
    config = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PORT=15000,
                          DOCKER_MIRROR_PATH=str(tmp_path / "mirror"))
    settings = settings_mod.load(config)
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text('{"debug": true}\n')
    paths = ClientPaths(daemon_json=daemon_json, docker_pid=tmp_path / "docker.pid",
                        containerd_config=tmp_path / "config.toml", certs_dir=tmp_path / "certs.d")
    plan = clients._plan_docker(None, paths, client_config.wanted(settings))
    clients.unchanged_since_planned([plan])          # nobody touched it: fine
    daemon_json.write_text('{"debug": true, "log-driver": "local"}\n')   # someone's edit meanwhile
    with pytest.raises(ClientFileError, match="changed while docker-mirror-clients was reading it"):
        clients.unchanged_since_planned([plan])


def test_undo_takes_away_the_copies_apply_kept_when_the_file_is_back_as_it_was(tmp_path):
    config = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PORT=15000,
                          DOCKER_MIRROR_PATH=str(tmp_path / "mirror"))
    settings = settings_mod.load(config)
    etc = tmp_path / "etc"
    (etc / "docker").mkdir(parents=True)
    (etc / "containerd").mkdir()
    (etc / "docker/daemon.json").write_text('{"debug": true}\n')
    (etc / "containerd/config.toml").write_text(DEBIAN_CONTAINERD_CONFIG)
    before = {p.name: p.read_bytes() for p in etc.rglob("*") if p.is_file()}
    paths = ClientPaths(daemon_json=etc / "docker/daemon.json", docker_pid=tmp_path / "docker.pid",
                        containerd_config=etc / "containerd/config.toml", certs_dir=etc / "containerd/certs.d")
    for _ in range(3):
        clients.apply(settings, paths, reload=False)
    assert len(list(etc.rglob("*.bak-*"))) == 2          # one copy per file, from the first run
    clients.undo(settings, reload=False)
    assert {p.name: p.read_bytes() for p in etc.rglob("*") if p.is_file()} == before
