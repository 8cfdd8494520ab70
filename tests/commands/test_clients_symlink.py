"""A symlinked daemon.json (kept elsewhere, under version control) stays a link through
docker-mirror-clients and its undo: the file it points at is edited and put back."""

import json

from mirror.commands import clients
from mirror.config import settings as settings_mod
from mirror.host.client_files import ClientPaths
from support.configs import write_config


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
