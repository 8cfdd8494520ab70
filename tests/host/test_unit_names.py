"""Unit names never collide between prefixes, and another mirror's unit files are never
overwritten (issue 19: prefix acc-update's keeper unit was prefix acc's refresh unit, and
unit files were overwritten without asking whose they were). No systemd needed: the unit
directory is a temp dir and systemctl is not called."""

from __future__ import annotations

import os
import random
import string

import pytest
from hypothesis import example, given, settings as hsettings, strategies as st

from mirror import render
from mirror.config import settings
from mirror.errors import MirrorOwned
from mirror.host import systemd
from mirror.model.instance import InstanceNames
from mirror.services import install
from support.configs import write_config

CONTEXT = dict(python="/usr/bin/python3", workdir="/srv")
FIRST = string.ascii_letters + string.digits
REST = FIRST + "_.-"
# What unit names are made of besides the prefix, and what earlier versions used:
# a prefix built from these is the likeliest to end where another's name does.
FRAGMENTS = ["-keeper", "-refresh", "-observe", "-update", ".service", ".timer", "-r1", "-", ".", "_"]


def names_of(prefix: str) -> set[str]:
    n = InstanceNames.of(prefix)
    return {n.keeper_unit, n.refresh_unit, n.refresh_timer, n.observe_unit, n.exports_file}


def prefixes(count: int, seed: int) -> set[str]:
    """Random valid prefixes (DOCKER_MIRROR_CONTAINER_PREFIX: 1-51 of [A-Za-z0-9_.-], the first
    a letter or digit), and each of them extended by name fragments, once and twice."""
    rnd = random.Random(seed)
    found = {"acc", "acc-update", "acc-keeper", "acc-refresh", "docker-mirror", "docker-mirror-keeper"}
    while len(found) < count:
        base = rnd.choice(FIRST) + "".join(rnd.choice(REST) for _ in range(rnd.randint(0, 8)))
        found.add(base)
        for _ in range(2):
            base = (base + rnd.choice(FRAGMENTS))[:51]
            found.add(base)
    return found


@pytest.mark.parametrize("seed", range(3))
def test_no_two_prefixes_share_a_unit_or_exports_name(seed):
    owner_of: dict[str, str] = {}
    for prefix in prefixes(3000, seed):
        for name in names_of(prefix):
            assert owner_of.setdefault(name, prefix) == prefix, \
                f"{name} is a name of both prefix {owner_of[name]!r} and prefix {prefix!r}"


PREFIX = st.from_regex(r"\A[a-zA-Z0-9][a-zA-Z0-9_.-]{0,40}\Z")


@hsettings(max_examples=300, deadline=None)
@given(a=PREFIX, b=PREFIX, tail=st.lists(st.sampled_from(FRAGMENTS), max_size=3))
@example(a="acc", b="acc-update", tail=[])     # the collision of the earlier names
@example(a="acc", b="acc", tail=["-keeper"])
@example(a="a-refresh", b="a", tail=["-observe"])
def test_two_valid_prefixes_never_share_a_name(a, b, tail):
    """Any pair of prefixes, and a prefix beside itself extended by name fragments."""
    for other in (b, a + "".join(tail)):
        if other != a and len(other) <= 51:
            assert not names_of(a) & names_of(other), (a, other)


def test_the_names_are_valid_unit_names_for_every_valid_prefix():
    for prefix in prefixes(500, 99):
        for name in names_of(prefix) - {InstanceNames.of(prefix).exports_file}:
            stem = name.rsplit(".", 1)[0]
            assert len(name) <= 255 and set(stem) <= set(REST), name   # systemd.unit(5)'s alphabet


def _load(directory, **overrides):
    directory.mkdir(exist_ok=True)
    return settings.load(write_config(directory / ".config", **overrides))


@pytest.fixture
def unit_dir(tmp_path, monkeypatch):
    directory = tmp_path / "system"
    directory.mkdir()
    monkeypatch.setattr(systemd, "SYSTEMD_DIR", directory)
    monkeypatch.setattr(systemd, "systemctl", lambda *args: None)
    monkeypatch.setattr(systemd, "remove_units", lambda names: None)
    monkeypatch.setattr(systemd, "start_units", lambda enable, start, changed: None)
    return directory


def _snapshot(directory):
    return {p.name: p.read_text() for p in directory.iterdir()}


def test_an_earlier_versions_unit_of_another_prefix_is_not_overwritten(tmp_path, unit_dir):
    """Prefix acc-keeper's keeper unit of an earlier version (PREFIX.service) is named as
    prefix acc's keeper unit today: setup for acc refuses, names the owner, writes nothing."""
    theirs = _load(tmp_path / "their tree", DOCKER_MIRROR_CONTAINER_PREFIX="acc-keeper",
                   DOCKER_MIRROR_PATH=str(tmp_path / "theirs"))
    mine = _load(tmp_path / "mine", DOCKER_MIRROR_CONTAINER_PREFIX="acc", DOCKER_MIRROR_PATH=str(tmp_path / "m"))
    older = render.unit_files(theirs, config_path=os.path.abspath(theirs.config_path), **CONTEXT)
    (unit_dir / "acc-keeper.service").write_text(older[theirs.instance.keeper_unit])
    before = _snapshot(unit_dir)
    with pytest.raises(MirrorOwned) as refused:
        install.install_units(mine)
    said = str(refused.value)
    assert f"{unit_dir}/acc-keeper.service belongs to the mirror of \"{tmp_path}/their tree/.config\"" in said
    assert "nothing was changed" in said and "DOCKER_MIRROR_CONTAINER_PREFIX" in said
    assert _snapshot(unit_dir) == before


def test_a_timer_of_another_mirror_and_a_users_own_unit_are_not_overwritten(tmp_path, unit_dir):
    first = _load(tmp_path / "first", DOCKER_MIRROR_PATH=str(tmp_path / "a"))
    second = _load(tmp_path / "second", DOCKER_MIRROR_PATH=str(tmp_path / "b"))   # the same prefix
    install.install_units(first)
    before = _snapshot(unit_dir)
    with pytest.raises(MirrorOwned, match=f"belongs to the mirror of {tmp_path}/first/.config"):
        install.install_units(second)
    assert _snapshot(unit_dir) == before
    # a timer names no .config: it is its service's
    timer = first.instance.refresh_timer
    assert f"{timer} belongs to the mirror of {tmp_path}/first/.config" in \
        systemd.owner(timer, render.unit_marker(second))

    (unit_dir / "own-keeper.service").write_text("[Service]\nExecStart=/bin/true\n")
    mine = _load(tmp_path / "own", DOCKER_MIRROR_CONTAINER_PREFIX="own", DOCKER_MIRROR_PATH=str(tmp_path / "o"))
    with pytest.raises(MirrorOwned, match="own-keeper.service was not written by the docker-mirror tools"):
        install.install_units(mine)
    assert (unit_dir / "own-keeper.service").read_text() == "[Service]\nExecStart=/bin/true\n"


def test_a_mirrors_own_units_are_rewritten_and_the_owner_check_passes(tmp_path, unit_dir):
    loaded = _load(tmp_path / "mine", DOCKER_MIRROR_PATH=str(tmp_path / "m"))
    install.install_units(loaded)
    keeper = unit_dir / loaded.instance.keeper_unit
    keeper.write_text(keeper.read_text().replace("RestartSec=5s", "RestartSec=9s"))   # an older text
    assert install.install_units(loaded) is True
    assert "RestartSec=5s" in keeper.read_text()
    systemd.check_owner(install.unit_names(loaded), render.unit_marker(loaded))


def test_status_under_systemd_names_the_real_unit(tmp_path, monkeypatch):
    """Not docker-mirror.service whatever the prefix: the keeper unit of this prefix."""
    from mirror.services import status
    loaded = _load(tmp_path / "mine", DOCKER_MIRROR_CONTAINER_PREFIX="acc-update",
                   DOCKER_MIRROR_PATH=str(tmp_path / "m"))
    monkeypatch.setattr(systemd, "systemd_is_pid1", lambda: True)
    said = status.format_text(status.gather(loaded, None, headroom=False))
    assert "Keeper: not running ('make docker-mirror' starts it); journalctl -u acc-update-keeper.service " \
           "says why" in said
    assert "docker-mirror.service" not in said


def test_a_unit_whose_config_is_gone_is_taken_over(tmp_path, unit_dir):
    """A checkout deleted without make docker-mirror-remove leaves its units: they must not
    block the next mirror of that prefix forever (as its containers do not: services.ownership)."""
    first = _load(tmp_path / "first tree", DOCKER_MIRROR_PATH=str(tmp_path / "a"))
    install.install_units(first)
    second = _load(tmp_path / "second", DOCKER_MIRROR_PATH=str(tmp_path / "b"))
    os.unlink(first.config_path)
    install.install_units(second)
    assert render.unit_marker(second) in (unit_dir / second.instance.keeper_unit).read_text()
