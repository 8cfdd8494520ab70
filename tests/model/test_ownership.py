"""Whether a second checkout's settings make the same mirror as the owner's (pure)."""

import dataclasses

from mirror.config import settings
from mirror.model.ownership import differences
from mirror.services import keeper
from support.configs import write_config


def _load(directory, **overrides):
    directory.mkdir(exist_ok=True)
    return settings.load(write_config(directory / ".config", **overrides))


def test_two_checkouts_with_the_defaults_make_the_same_mirror(tmp_path):
    # kdevops trees sharing /mirror/docker: only the .config's own path differs
    assert differences(_load(tmp_path / "a"), _load(tmp_path / "b")) == []


def test_what_differs_is_named_by_its_symbol_and_secrets_are_not_shown(tmp_path):
    theirs = _load(tmp_path / "a")
    ours = _load(tmp_path / "b", DOCKER_MIRROR_PORT=5001,
                 DOCKER_MIRROR_DOCKERHUB_REMOTE_URL="https://someone:hunter2@hub.example",
                 DOCKER_MIRROR_DOCKERHUB_USERNAME="someone", DOCKER_MIRROR_DOCKERHUB_PASSWORD="s3cret-pw")
    said = differences(theirs, ours)
    assert "DOCKER_MIRROR_PORT: 5000 there, 5001 here" in said
    assert "upstreams[dockerhub].remote_url: 'https://registry-1.docker.io' there, " \
           "'https://hub.example' here" in said
    assert "upstreams[dockerhub].password (a secret: not shown)" in said
    assert not any("hunter2" in line or "s3cret-pw" in line for line in said)


def test_an_upstream_on_one_side_only_is_named(tmp_path):
    theirs = _load(tmp_path / "a")
    ours = dataclasses.replace(theirs, upstreams=theirs.upstreams[:0], config_path="/elsewhere/.config")
    assert "upstreams: dockerhub only there" in differences(theirs, ours)


def test_the_keeper_names_what_is_gone(tmp_path):
    loaded = _load(tmp_path / "a", DOCKER_MIRROR_PATH=str(tmp_path / "mirror"))
    assert keeper.gone(loaded, tmp_path / "mirror") == f"the mirror directory {tmp_path}/mirror is gone"
    (tmp_path / "mirror").mkdir()
    assert keeper.gone(loaded, tmp_path / "mirror") is None
    (tmp_path / "a" / ".config").unlink()
    assert keeper.gone(loaded, tmp_path / "mirror") == f"{tmp_path}/a/.config is gone"
