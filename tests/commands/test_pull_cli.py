"""scripts/mirror-docker-images.sh [LIST] [--scan] [--archive] [--path DIR] [--port N] [--name PREFIX],
options in any order."""

import os
import subprocess

import pytest

from mirror.config.kconfig import ROOT
from support.configs import QUIET_PROBES, write_config
from support.mirrors import Mirror
from support.upstream import UpstreamRegistry, push_image

SCRIPT = str(ROOT / "scripts/mirror-docker-images.sh")


@pytest.fixture
def hub(tmp_path):
    with UpstreamRegistry(tmp_path / "hub") as registry:
        yield registry


@pytest.fixture
def mirror(tmp_path, hub, docker_client, registry_image):
    m = Mirror(tmp_path / "m", hub.url)
    m.setup()
    yield m
    m.remove(docker_client)


def script(mirror, *args, cwd):
    env = {**os.environ, **QUIET_PROBES, "KCONFIG_CONFIG": str(mirror.config)}
    return subprocess.run([SCRIPT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_list_and_archive_in_any_order(tmp_path, hub, mirror):
    digest = push_image(hub.url, "minio/minio", "RELEASE.x")
    (tmp_path / "work").mkdir()
    (tmp_path / "work/images.txt").write_text("minio/minio:RELEASE.x\n")
    result = script(mirror, "--archive", "images.txt", cwd=tmp_path / "work")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"docker.io/minio/minio:RELEASE.x\t{digest}" in (mirror.root / "images/manifest.txt").read_text()
    archives = list((mirror.root / "images/archives").glob("*minio*.tar"))
    assert len(archives) == 1 and archives[0].with_name(archives[0].name + ".sha256").exists()


def test_scan_alone_prints_and_scan_with_a_pull_warms(tmp_path, hub, mirror):
    digest = push_image(hub.url, "library/etcd-like", "3.5")
    push_image(hub.url, "library/registry", "2")  # --scan also finds the registry image
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "deploy.yml").write_text("services:\n  db:\n    container_image: \"etcd-like:3.5\"\n")
    listing = script(mirror, "--scan", cwd=tmp_path)
    assert listing.returncode == 0
    assert "docker.io/library/registry:2\t" in listing.stdout  # the Kconfig default of *_IMAGE
    assert not (mirror.root / "logs/last-refresh.json").exists()  # printed, pulled nothing
    pulled = mirror.run("pull", "--scan-dir", str(workflows))
    assert "docker.io/library/etcd-like:3.5" in pulled.stdout
    assert f"docker.io/library/etcd-like:3.5\t{digest}" in (mirror.root / "images/manifest.txt").read_text()


def test_bad_option_and_two_lists_are_refused(tmp_path, mirror):
    assert script(mirror, "--archvie", cwd=tmp_path).returncode == 2
    two = script(mirror, "a.txt", "b.txt", cwd=tmp_path)
    assert two.returncode == 2 and "one image list at most" in two.stderr


def test_the_overrides_reach_the_pull_without_an_engine(tmp_path):
    """--path/--port/--name (docker-mirror-setup.sh DIR PORT NAME's mirror) go on to
    `python3 -m mirror pull`. The .config's own DOCKER_MIRROR_PATH is invalid and every call
    has one bad override, so nothing can start: which error comes back shows what arrived."""
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_PATH="relative/mirror")
    env = {**os.environ, **QUIET_PROBES, "KCONFIG_CONFIG": str(config)}

    def run(*args):
        return subprocess.run([SCRIPT, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60)

    alone = run("--archive")
    assert alone.returncode == 2 and f"CONFIG_DOCKER_MIRROR_PATH='relative/mirror' ({config}:" in alone.stderr
    where = str(tmp_path / "elsewhere")
    port = run("images.txt", "--path", where, "--archive", "--port", "70000", "--name", "other")
    assert port.returncode == 2, port.stdout + port.stderr
    assert port.stderr == "error: CONFIG_DOCKER_MIRROR_PORT=70000 (command line): " \
                          "must be an integer from 1 to 65535\n"
    name = run(f"--path={where}", "--name=Bad!")
    assert name.returncode == 2 and "CONFIG_DOCKER_MIRROR_CONTAINER_PREFIX='Bad!' (command line)" \
        in name.stderr, name.stderr
    missing = run("--path", where, "--port")
    assert missing.returncode == 2 and "option '--port' needs a value" in missing.stderr
    assert "--path DIR] [--port N] [--name PREFIX]" in run("--help").stdout
    assert not (tmp_path / "elsewhere").exists() and "Traceback" not in port.stderr + name.stderr
