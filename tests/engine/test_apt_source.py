"""The deb-src source the engine's build adds (mirror.engine.apt_source), on apt
directories of its own: Debian's deb822 files, one-line sources.list files,
Ubuntu's universe, a machine that already has deb-src, and never a user file
touched."""

from __future__ import annotations

import os
import subprocess
import sys

from mirror.config.kconfig import ROOT
from mirror.engine import apt_source

DEBIAN = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

DEBIAN_POLICY = """\
docker-registry:
  Installed: (none)
  Candidate: 2.8.2+ds1-1
  Version table:
     2.8.2+ds1-1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
"""

UBUNTU_LIST = """\
deb [arch=amd64 signed-by=/usr/share/keyrings/ubuntu-archive-keyring.gpg] http://archive.ubuntu.com/ubuntu/ noble main restricted universe # comment
deb http://archive.ubuntu.com/ubuntu/ noble-updates main restricted universe
deb https://download.docker.com/linux/ubuntu noble stable
# deb-src http://archive.ubuntu.com/ubuntu/ noble main restricted universe
"""


def apt_dir(tmp_path, sources: dict[str, str], os_release: str = "VERSION_CODENAME=bookworm\n"):
    root = tmp_path / "apt"
    (root / "sources.list.d").mkdir(parents=True)
    for name, text in sources.items():
        (root / name).write_text(text)
    (tmp_path / "os-release").write_text(os_release)
    return root


def ensure(tmp_path, root, policy=""):
    return apt_source.ensure(str(root), str(tmp_path / "os-release"), policy=policy)


def test_debian_gets_deb_src_for_the_archive_and_suite_that_hold_the_package(tmp_path):
    root = apt_dir(tmp_path, {"sources.list.d/debian.sources": DEBIAN})
    user_file = (root / "sources.list.d/debian.sources").read_bytes()
    done = ensure(tmp_path, root, DEBIAN_POLICY)
    assert done.startswith(f"wrote {root}/{apt_source.OWN_FILE}")
    (entry,) = apt_source.parse_deb822((root / apt_source.OWN_FILE).read_text())
    assert entry == apt_source.Entry(("deb-src",), ("http://deb.debian.org/debian",), ("bookworm",), ("main",),
                                     (("Signed-By", "/usr/share/keyrings/debian-archive-keyring.gpg"),))
    assert (root / "sources.list.d/debian.sources").read_bytes() == user_file   # never edited
    # Idempotent: a second run writes nothing (so needs no apt-get update).
    mtime = os.stat(root / apt_source.OWN_FILE).st_mtime_ns
    assert ensure(tmp_path, root, DEBIAN_POLICY) == ""
    assert os.stat(root / apt_source.OWN_FILE).st_mtime_ns == mtime


def test_without_package_lists_the_release_suite_with_main_is_taken(tmp_path):
    # A fresh container: apt-cache policy knows nothing yet.
    root = apt_dir(tmp_path, {"sources.list.d/debian.sources": DEBIAN})
    ensure(tmp_path, root, policy="")
    (entry,) = apt_source.parse_deb822((root / apt_source.OWN_FILE).read_text())
    assert (entry.uris, entry.suites) == (("http://deb.debian.org/debian",), ("bookworm",))


def test_ubuntu_one_line_sources_keep_universe_and_the_key_and_skip_other_repositories(tmp_path):
    root = apt_dir(tmp_path, {"sources.list": UBUNTU_LIST},
                   os_release='VERSION_CODENAME=noble\nUBUNTU_CODENAME=noble\n')
    ensure(tmp_path, root, policy="")
    (entry,) = apt_source.parse_deb822((root / apt_source.OWN_FILE).read_text())
    assert entry.uris == ("http://archive.ubuntu.com/ubuntu/",)
    assert entry.suites == ("noble",)
    assert entry.components == ("main", "restricted", "universe")
    assert entry.options == (("Signed-By", "/usr/share/keyrings/ubuntu-archive-keyring.gpg"),)


def test_a_machine_with_deb_src_already_gets_nothing_and_a_stale_own_file_goes(tmp_path):
    debian_with_src = DEBIAN.replace("Types: deb\n# http", "Types: deb deb-src\n# http", 1)
    root = apt_dir(tmp_path, {"sources.list.d/debian.sources": debian_with_src})
    assert ensure(tmp_path, root, DEBIAN_POLICY) == ""
    assert not (root / apt_source.OWN_FILE).exists()
    # Ours, written before the user added deb-src: removed, so apt does not see the source twice.
    (root / apt_source.OWN_FILE).write_text("Types: deb-src\nURIs: http://deb.debian.org/debian\n"
                                            "Suites: bookworm\nComponents: main\n")
    assert ensure(tmp_path, root, DEBIAN_POLICY).startswith("removed")
    assert not (root / apt_source.OWN_FILE).exists()


def test_disabled_and_commented_sources_do_not_count(tmp_path):
    disabled_src = ("Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n"
                    "Components: main\nEnabled: no\n")
    root = apt_dir(tmp_path, {"sources.list.d/debian.sources": DEBIAN,
                              "sources.list.d/src.sources": disabled_src,
                              "sources.list": "# deb-src http://deb.debian.org/debian bookworm main\n"})
    assert ensure(tmp_path, root, DEBIAN_POLICY).startswith("wrote")


def test_policy_origins_read_the_package_lists_archive_and_suite():
    assert apt_source.policy_origins(DEBIAN_POLICY) == [("http://deb.debian.org/debian", "bookworm")]
    assert apt_source.policy_origins("N: Unable to locate package docker-registry\n") == []


def test_it_runs_with_the_systems_python_and_no_venv(tmp_path):
    # install-deps.sh runs it before the venv exists: the standard library only.
    # -S: no site-packages, so nothing of the venv's can be imported.
    code = "import mirror.engine.apt_source as a; assert a.parse_one_line('deb http://x y main')"
    result = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"]}, timeout=30)
    assert result.returncode == 0, result.stderr
