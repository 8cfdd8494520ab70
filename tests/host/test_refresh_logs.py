"""Refresh logs: names, pruning by age, timestamps; the NFS export file."""

import os
import re
import time

from mirror.services import install
from mirror.config import settings
from mirror.host import layout as L
from mirror.host.runlog import RunLog, new_log_path, prune_logs
from support.configs import write_config


def make_layout(tmp_path) -> L.Layout:
    layout = L.Layout(tmp_path / "mirror", tmp_path / "mirror" / "registry")
    layout.logs_dir.mkdir(parents=True)
    return layout


def test_log_names_are_timestamped_and_never_collide(tmp_path):
    layout = make_layout(tmp_path)
    now = time.mktime((2026, 11, 23, 2, 0, 7, 0, 0, -1))
    first = new_log_path(layout, now)
    assert first.name == "update-20261123-020007.log"
    first.touch()
    assert new_log_path(layout, now).name == "update-20261123-020007-1.log"


def test_logs_older_than_retention_are_pruned(tmp_path):
    layout = make_layout(tmp_path)
    now = time.time()
    old, recent, other = (layout.logs_dir / n for n in ("update-old.log", "update-new.log", "keep.txt"))
    for path, age_days in ((old, 31), (recent, 29), (other, 400)):
        path.write_text("x")
        os.utime(path, (now - age_days * 86400,) * 2)
    assert prune_logs(layout, 30, now) == [old]
    assert sorted(p.name for p in layout.logs_dir.iterdir()) == ["keep.txt", "update-new.log"]


def test_log_lines_are_timestamped(tmp_path):
    echoed = []
    log = RunLog(tmp_path / "run.log", echo=echoed.append, stamp_echo=True)
    log("warming 2 image(s)")
    log.close()
    line = (tmp_path / "run.log").read_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} warming 2 image\(s\)\n", line)
    assert echoed == [line.rstrip("\n")]


def test_nfs_export_without_exportfs_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no exportfs on PATH
    loaded = settings.load(write_config(tmp_path / ".config", DOCKER_MIRROR_NFS_EXPORT=True,
                                        DOCKER_MIRROR_NFS_CLIENTS="192.168.122.0/24 builder.lan"))
    said = []
    exports = tmp_path / "exports.d" / "docker-mirror.exports"
    install.export_nfs(loaded, log=said.append, exports_dir=exports.parent)
    text = exports.read_text()
    assert '"/mirror/docker" 192.168.122.0/24(ro,no_subtree_check,root_squash) ' \
           'builder.lan(ro,no_subtree_check,root_squash)' in text
    assert said and "exportfs is missing" in said[0] and "nfs-kernel-server" in said[0]
