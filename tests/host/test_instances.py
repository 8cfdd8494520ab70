"""Two configurations on one host keep their own systemd units and NFS exports file."""

from __future__ import annotations

import os

from mirror import render
from mirror.services import install
from mirror.config import settings
from mirror.model.settings import Settings
from mirror.host import nfs, systemd
from support.configs import write_config

CONTEXT = dict(python="/usr/bin/python3", workdir="/srv")


def _load(directory, **overrides) -> Settings:
    directory.mkdir(exist_ok=True)
    return settings.load(write_config(directory / ".config", **overrides))


def _install_units(monkeypatch, unit_dir, loaded) -> dict[str, str]:
    """Write the units as setup does, into `unit_dir` (no systemctl: no systemd here)."""
    monkeypatch.setattr(systemd, "SYSTEMD_DIR", unit_dir)
    monkeypatch.setattr(systemd, "systemctl", lambda *args: None)
    texts = render.unit_files(loaded, config_path=os.path.abspath(loaded.config_path), **CONTEXT)
    systemd.write_units(texts)
    return texts


def test_a_second_prefix_gets_units_of_its_own(tmp_path, monkeypatch):
    unit_dir = tmp_path / "system"
    unit_dir.mkdir()
    first = _load(tmp_path / "first")
    second = _load(tmp_path / "second", DOCKER_MIRROR_CONTAINER_PREFIX="ci-mirror",
                   DOCKER_MIRROR_PATH=str(tmp_path / "ci"))
    first_texts = _install_units(monkeypatch, unit_dir, first)
    second_texts = _install_units(monkeypatch, unit_dir, second)

    # each unit is named by its prefix and the thing it runs
    assert sorted(first_texts) == ["docker-mirror-keeper.service", "docker-mirror-refresh.service",
                                   "docker-mirror-refresh.timer"]
    assert sorted(second_texts) == ["ci-mirror-keeper.service", "ci-mirror-refresh.service",
                                    "ci-mirror-refresh.timer"]
    # nothing of the first was overwritten, and each timer starts its own refresh
    for name, text in first_texts.items():
        assert (unit_dir / name).read_text() == text, name
    assert "Unit=ci-mirror-refresh.service" in (unit_dir / "ci-mirror-refresh.timer").read_text()
    assert "Unit=docker-mirror-refresh.service" in (unit_dir / "docker-mirror-refresh.timer").read_text()

    # remove finds each mirror's units by its .config, and only those
    assert systemd.units_of(render.unit_marker(second)) == [
        "ci-mirror-keeper.service", "ci-mirror-refresh.service", "ci-mirror-refresh.timer"]
    assert sorted(systemd.units_of(render.unit_marker(first))) == sorted(first_texts)


def test_setup_replaces_the_units_earlier_versions_named_otherwise(tmp_path, monkeypatch):
    """An upgrade: the keeper's unit was PREFIX.service, the refresh's PREFIX-update.service
    and .timer; setup stops, disables and deletes them (before it starts PREFIX-keeper.service,
    which would wait on the old keeper's lock), and leaves a unit the product did not write,
    or another mirror's, alone."""
    unit_dir = tmp_path / "system"
    unit_dir.mkdir()
    loaded = _load(tmp_path / "mine")
    other = _load(tmp_path / "other", DOCKER_MIRROR_CONTAINER_PREFIX="ci-mirror",
                  DOCKER_MIRROR_PATH=str(tmp_path / "ci"))
    # what the earlier version installed: the same units, under the older unit and verb names
    for settings_ in (loaded, other):
        texts = _install_units(monkeypatch, unit_dir, settings_)
        names, prefix = settings_.instance, settings_.container_prefix
        keeper = texts[names.keeper_unit].replace(" keeper\n", " watch\n")
        assert " watch\n" in keeper
        for name, older, text in ((names.keeper_unit, f"{prefix}.service", keeper),
                                  (names.refresh_unit, f"{prefix}-update.service", texts[names.refresh_unit]),
                                  (names.refresh_timer, f"{prefix}-update.timer", texts[names.refresh_timer])):
            (unit_dir / name).unlink()
            (unit_dir / older).write_text(text)
    (unit_dir / "unrelated.service").write_text(f"[Service]\nExecStart=/bin/true {render.unit_marker(loaded)}\n")

    calls = []
    monkeypatch.setattr(systemd, "remove_units", lambda names: calls.append(("remove", sorted(names))))
    monkeypatch.setattr(systemd, "start_units", lambda enable, start, changed: calls.append(("start", start)))
    install.install_units(loaded)

    assert calls == [("remove", ["docker-mirror-update.service", "docker-mirror-update.timer",
                                 "docker-mirror.service"]),
                     ("start", ["docker-mirror-keeper.service", "docker-mirror-refresh.timer"])]
    assert " keeper\n" in (unit_dir / "docker-mirror-keeper.service").read_text()
    assert "Unit=docker-mirror-refresh.service" in (unit_dir / "docker-mirror-refresh.timer").read_text()
    assert all((unit_dir / name).exists() for name in (
        "ci-mirror.service", "ci-mirror-update.service", "ci-mirror-update.timer", "unrelated.service"))


def test_units_of_ignores_unit_files_the_product_did_not_write(tmp_path, monkeypatch):
    loaded = _load(tmp_path / "mine")
    unit_dir = tmp_path / "system"
    unit_dir.mkdir()
    _install_units(monkeypatch, unit_dir, loaded)
    # a user's own unit that happens to mention the same .config
    (unit_dir / "backup.service").write_text(f"[Service]\nExecStart=/bin/cp {render.unit_marker(loaded)} /backup\n")
    assert "backup.service" not in systemd.units_of(render.unit_marker(loaded))


def test_nfs_exports_file_per_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no exportfs: the files alone
    exports_dir = tmp_path / "exports.d"
    nfs_on = dict(DOCKER_MIRROR_NFS_EXPORT=True, DOCKER_MIRROR_NFS_CLIENTS="192.168.122.0/24")
    first = _load(tmp_path / "first", **nfs_on)
    second = _load(tmp_path / "second", DOCKER_MIRROR_CONTAINER_PREFIX="ci-mirror",
                   DOCKER_MIRROR_PATH=str(tmp_path / "ci"), **nfs_on)
    install.export_nfs(first, log=lambda _: None, exports_dir=exports_dir)
    install.export_nfs(second, log=lambda _: None, exports_dir=exports_dir)
    assert sorted(p.name for p in exports_dir.iterdir()) == ["ci-mirror.exports", "docker-mirror.exports"]
    assert '"/mirror/docker" ' in (exports_dir / "docker-mirror.exports").read_text()
    assert f'"{tmp_path}/ci" ' in (exports_dir / "ci-mirror.exports").read_text()

    # unexporting the second leaves the first's file alone
    assert nfs.unexport(render.exports_path(second.path), second.path, log=lambda _: None,
                        exports_file=exports_dir / second.instance.exports_file)
    assert sorted(p.name for p in exports_dir.iterdir()) == ["docker-mirror.exports"]
