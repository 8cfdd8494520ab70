"""The registry engine's build (mirror.engine.build): its key, the order patches
apply in, the cache, and Go's own tests in the patched tree.

The pure parts run in milliseconds. The real builds share this machine's
engine cache (what `make deps` filled; built here once if it is missing) and
Go's build cache, so a rebuild for one more patch takes seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import docker.errors
import pytest

from mirror.engine import build, storage_drivers
from mirror.engine.registry_image import CONFIG_V2, ensure_registry_image
from mirror.errors import EngineBuildError, EnginePatchError, EngineTestFailure, EngineToolchainError
from support.configs import run_mirror

SERIES = """\
0001-config-allow-delete.patch
0002-config-docker-registry.patch
# a comment
0003-no-azure.patch

0004-replace-rsc.io-letsencrypt-in-favour-of-golang.org-x.patch -p1
0005-odd-strip.patch -p0
"""

CONTROL = """\
Source: docker-registry
Build-Depends: debhelper-compat (= 13),
               dh-golang,
               golang-any,
               golang-github-aws-aws-sdk-go-dev (>= 1.0) [amd64],
               golang-github-gorilla-mux-dev | golang-mux-dev,
               golang-gopkg-check.v1-dev,
Homepage: https://github.com/docker/distribution

Package: docker-registry
Depends: golang-not-a-build-dependency
"""


# ------------------------------------------------------------------ pure parts

def test_only_numbered_patch_files_apply_in_name_order():
    names = ["README.md", "0010-later.patch", "0002-second.patch", "0001-first.patch",
             "1-short.patch", "0003-draft.patch.orig", "0004-notes.txt"]
    assert build.patch_names(names) == ["0001-first.patch", "0002-second.patch", "0010-later.patch"]


def test_debians_series_without_its_azure_cut():
    assert build.debian_patches_to_apply(SERIES) == [
        ("0001-config-allow-delete.patch", 1), ("0002-config-docker-registry.patch", 1),
        ("0004-replace-rsc.io-letsencrypt-in-favour-of-golang.org-x.patch", 1), ("0005-odd-strip.patch", 0)]
    assert "0003-no-azure.patch" in [name for name, _ in build.debian_series(SERIES)]


def test_the_key_follows_the_patches_names_bytes_and_order():
    one = [("0001-a.patch", b"diff one\n")]
    key = build.engine_key(one)
    assert key == build.engine_key(list(one)) and len(key) == 64
    assert build.engine_key([("0001-a.patch", b"diff one!\n")]) != key        # a changed patch
    assert build.engine_key([("0001-b.patch", b"diff one\n")]) != key         # a renamed one
    two = [*one, ("0002-b.patch", b"diff two\n")]
    assert build.engine_key(two) != key                                       # one more
    assert build.engine_key(two[::-1]) != build.engine_key(two)               # another order
    assert build.engine_key([]) != key


def test_the_key_and_the_image_name_need_neither_apt_nor_go(tmp_path, monkeypatch):
    (tmp_path / "0001-x.patch").write_bytes(b"--- a/x\n+++ b/x\n")
    (tmp_path / "README.md").write_text("not a patch")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))   # no apt-get, no go, no dpkg
    key = build.current_key(tmp_path)
    assert key == build.engine_key([("0001-x.patch", b"--- a/x\n+++ b/x\n")])
    assert build.image_ref(key) == f"docker-mirror/registry:2.8.2-dm.{key[:12]}"
    assert build.version_string(key) == f"2.8.2+dm.{key[:12]}"
    assert build.is_built_ref(build.image_ref(key))
    assert not build.is_built_ref("docker-mirror/registry:2.8.2-offline")
    assert not build.is_built_ref("docker.io/library/registry:2")


def test_build_depends_are_the_go_packages_of_the_source_stanza_and_the_azure_sdk():
    assert build.build_depends(CONTROL) == [
        "golang-any", "golang-github-aws-aws-sdk-go-dev", "golang-github-gorilla-mux-dev",
        "golang-gopkg-check.v1-dev", "golang-github-azure-azure-sdk-for-go-dev"]


def test_versions_of_the_debian_source():
    assert build.dsc_version("Format: 3.0 (quilt)\nSource: docker-registry\nVersion: 2.8.2+ds1-1\n") == "2.8.2+ds1-1"
    assert build.upstream_version("2.8.2+ds1-1") == "2.8.2"
    assert build.upstream_version("1:2.8.2~rc1-0ubuntu1") == "2.8.2"
    assert build.upstream_version("2.8.3") == "2.8.3"
    with pytest.raises(EngineBuildError, match="no Version"):
        build.dsc_version("Source: docker-registry\n")


def test_go_runs_offline_in_gopath_mode_whatever_the_callers_go_settings():
    env = build.go_env(Path("/c/k/gopath"), Path("/c/go-build"),
                       base={"PATH": "/usr/bin", "GOFLAGS": "-mod=mod", "GOPROXY": "https://proxy.golang.org"})
    assert env["GOPATH"] == "/c/k/gopath:/usr/share/gocode"
    assert (env["GO111MODULE"], env["GOPROXY"], env["GOFLAGS"], env["GOCACHE"]) == ("off", "off", "", "/c/go-build")
    assert env["PATH"] == "/usr/bin"
    argv = build.go_build_argv(Path("/out/registry"), "ab" * 32)
    assert argv[-1] == "./cmd/registry" and "-X github.com/docker/distribution/version.Version=2.8.2+dm.abababababab" in argv
    # At most BUILD_JOBS compilers at once, whatever the host: the units' limits hold on any.
    assert build.go_build_argv(Path("/o"), "ab" * 32, cpus=64)[2:4] == ["-p", "4"]
    assert build.go_build_argv(Path("/o"), "ab" * 32, cpus=2)[2:4] == ["-p", "2"]


def test_go_test_output_is_read_per_package():
    output = ("ok  \tgithub.com/docker/distribution/registry/proxy\t11.085s\n"
              "?   \tgithub.com/docker/distribution/registry/proxy/x\t[no test files]\n"
              "--- FAIL: TestX (0.00s)\n"
              "FAIL\tgithub.com/docker/distribution/registry/storage/driver/azure\t0.837s\n"
              "ok  \tgithub.com/docker/distribution/registry/handlers\t0.010s [no tests to run]\n"
              "FAIL\n")
    assert build.go_test_results(output) == [
        ("ok", "github.com/docker/distribution/registry/proxy", "11.085s"),
        ("no tests", "github.com/docker/distribution/registry/proxy/x", ""),
        ("FAIL", "github.com/docker/distribution/registry/storage/driver/azure", "0.837s"),
        ("no tests", "github.com/docker/distribution/registry/handlers", "0.010s")]


# ------------------------------------------------------------------ the cache

def fake_build(cache: Path, key: str) -> Path:
    directory = cache / key
    directory.mkdir(parents=True)
    (directory / "registry").write_bytes(b"#!/bin/sh\n")
    (directory / "build.json").write_text(json.dumps({"key": key, "debian_version": "2.8.2+ds1-1"}))
    return directory


def test_a_build_in_the_cache_is_reused_without_apt_or_go(tmp_path, monkeypatch):
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-x.patch").write_bytes(b"x")
    key = build.current_key(patches)
    directory = fake_build(tmp_path / "cache", key)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))   # any apt-get, dpkg or go would fail
    found = build.ensure(cache=tmp_path / "cache", patch_dir=patches, log=pytest.fail)
    assert (found.key, found.binary) == (key, directory / "registry")
    # One byte more in the patch: another key, so a build, which needs the toolchain.
    (patches / "0001-x.patch").write_bytes(b"xy")
    with pytest.raises(EngineToolchainError, match="make deps"):
        build.ensure(cache=tmp_path / "cache", patch_dir=patches, log=lambda _: None)
    assert not list((tmp_path / "cache").glob(".build-*"))   # nothing half-made left behind


def test_a_half_written_build_is_not_taken(tmp_path):
    key = "c" * 64
    directory = fake_build(tmp_path, key)
    (directory / "build.json").write_text("{")
    assert build.cached(key, tmp_path) is None
    (directory / "build.json").write_text(json.dumps({"key": key}))
    (directory / "registry").unlink()
    assert build.cached(key, tmp_path) is None


def test_only_the_newest_builds_stay(tmp_path):
    keys = [f"{n:x}" * 64 for n in range(5)]
    for age, key in enumerate(keys):
        fake_build(tmp_path, key)
        os.utime(tmp_path / key / "build.json", (1000 + age, 1000 + age))
    (tmp_path / "source").mkdir()
    build._prune(tmp_path, keep=tmp_path / keys[0])   # the one just built, whatever its time
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["source", keys[0], keys[4], keys[3]])


def test_an_unwritable_cache_names_the_variable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(EngineBuildError, match=build.CACHE_ENV):
        build.ensure(cache=blocker / "cache", patch_dir=tmp_path, log=lambda _: None)


# ------------------------------------------------------------------ real builds

@pytest.fixture(scope="module")
def machine_build():
    """This checkout's build in this machine's cache (built once if missing)."""
    return build.ensure()


@pytest.fixture
def scratch_cache(tmp_path, machine_build):
    """A cache of its own, with the machine's Debian source and Go build cache in it."""
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copytree(machine_build.directory.parent / "source", cache / "source")
    os.symlink(machine_build.directory.parent / "go-build", cache / "go-build")
    return cache


def add_marker_patch(patches: Path, machine_build) -> None:
    """One more product patch: a comment at the end of version/version.go."""
    source = (machine_build.tree / "version/version.go").read_text().splitlines()
    last = len(source)
    (patches / "0999-marker.patch").write_text(
        "Description: a test's marker\n---\n--- a/version/version.go\n+++ b/version/version.go\n"
        f"@@ -{last},1 +{last},2 @@\n {source[-1]}\n+// docker-mirror test marker\n")


@pytest.mark.engine
def test_the_built_registry_has_azure_and_says_its_build(machine_build):
    out = subprocess.run([str(machine_build.binary), "--version"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert build.version_string(machine_build.key) in out
    info = machine_build.info
    assert info["debian_version"].startswith("2.8.2+")
    assert "0003-no-azure.patch" not in info["debian_patches"] and info["debian_patches"]
    assert [p["name"] for p in info["product_patches"]] == build.patch_names(os.listdir(build.PATCH_DIR))
    assert (machine_build.tree / "registry/storage/driver/azure/azure.go").is_file()


def test_a_new_patch_is_built_in_by_setup_and_a_broken_one_names_itself(tmp_path, scratch_cache, machine_build,
                                                                       docker_client, monkeypatch):
    # What `make docker-mirror` meets after a pull brought one more patch: the image of the
    # new key is not here, so the engine is built (toolchain and source are) and its image made.
    patches = tmp_path / "patches"
    shutil.copytree(build.PATCH_DIR, patches)
    monkeypatch.setattr(build, "PATCH_DIR", patches)
    monkeypatch.setenv(build.CACHE_ENV, str(scratch_cache))
    broken = patches / "0999-broken.patch"
    broken.write_text("Description: does not apply\n---\n--- a/version/version.go\n+++ b/version/version.go\n"
                      "@@ -1,1 +1,1 @@\n-no such line\n+another\n")
    with pytest.raises(EnginePatchError, match="0999-broken.patch does not apply to docker-registry 2.8.2"):
        ensure_registry_image(docker_client, build.image_ref(build.current_key()), log=lambda _: None)
    assert not list(scratch_cache.glob(".build-*"))

    broken.unlink()
    add_marker_patch(patches, machine_build)
    ref = build.image_ref(build.current_key())
    said = []
    try:
        image = ensure_registry_image(docker_client, ref, log=said.append)
        assert (image.ref, image.major, image.config_path) == (ref, 2, CONFIG_V2)
        assert said and said[0].startswith(f"building the registry engine {ref}")
        made = build.cached(build.current_key())
        assert made.key != machine_build.key and made.directory.parent == scratch_cache
        assert made.info["product_patches"][-1]["name"] == "0999-marker.patch"
        assert (made.tree / "version/version.go").read_text().endswith("// docker-mirror test marker\n")
        assert build.version_string(made.key) in subprocess.run(
            [str(made.binary), "--version"], capture_output=True, text=True, timeout=30).stdout
        labels = docker_client.images.get(ref).labels
        assert labels[build.PATCHES_LABEL].endswith(",0999-marker.patch")
        assert "azure" in labels[storage_drivers.LABEL].split(",")
        said.clear()   # asked again: found, nothing built, nothing said
        assert ensure_registry_image(docker_client, ref, log=said.append) == image and said == []
    finally:
        try:
            docker_client.images.remove(ref, force=True)
        except docker.errors.ImageNotFound:
            pass


@pytest.mark.engine
def test_a_test_run_whose_pattern_finds_no_test_fails(machine_build):
    """A patch's Go test renamed or dropped is not a pass: its -run pattern ran nothing."""
    with pytest.raises(EngineTestFailure, match="ran no test"):
        build.run_tests(machine_build, runs=((("./registry/handlers/",), "^TestNoSuchTestAnywhere$"),),
                        log=lambda _: None)


@pytest.mark.engine
def test_make_engine_test_runs_gos_own_tests_in_the_patched_tree(machine_build):
    result = run_mirror("engine", "--test", "--no-image", timeout=900)
    assert "reused from the cache" in result.stdout
    for package in ("registry/proxy", "registry/storage/driver/azure", "registry/handlers"):
        assert f"go test: ok       github.com/docker/distribution/{package}" in result.stdout, result.stdout

