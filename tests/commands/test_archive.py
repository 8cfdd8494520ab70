"""Archives of warm images: `docker load` gives the pulled image, restore seeds a fresh mirror."""

import hashlib
import shutil
import subprocess
import tarfile
import uuid

import docker.errors
import pytest

from mirror.services import archive, restore

from mirror.services import warm
from mirror.host.layout import Layout
from mirror.host import archives as host_archives
from mirror.model import archive_format, manifests
from mirror.model.archive_format import archive_name
from mirror.net import registry_api as regapi
from support.mirrors import mirror_factory
from support.upstream import UpstreamRegistry, make_layer, push_image

UID = uuid.uuid4().hex[:8]
# Names unique to this run: the engine is shared with other tests (and other runs).
APP = f"archtest{UID}/app"
OFFICIAL = f"library/arch{UID}"
MULTI = f"archtest{UID}/multi"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with UpstreamRegistry(tmp_path_factory.mktemp("hub")) as registry:
        yield registry


@pytest.fixture(scope="module")
def pushed(hub):
    base = make_layer(1_000_000, f"base-{UID}")
    return {
        "app": push_image(hub.url, APP, "v1", layers=[base, make_layer(2_000_000, f"app-{UID}")]),
        "official": push_image(hub.url, OFFICIAL, "1.0", layers=[base]),
        # multi-platform: only the host's platform is warmed and archived
        "multi": push_image(hub.url, MULTI, "v2", platforms=["linux/amd64", "linux/arm64"], media="oci"),
    }


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory, hub, docker_client, registry_image):
    with mirror_factory(docker_client, tmp_path_factory.mktemp) as make:
        yield lambda name, **overrides: make(hub.url, name, **overrides)


@pytest.fixture(scope="module")
def source(tmp_path_factory, pushed, mirrors):
    """A pull-through mirror, warmed with the three images."""
    listing = tmp_path_factory.mktemp("list") / "images.txt"
    listing.write_text(f"{APP}:v1\n{OFFICIAL.removeprefix('library/')}:1.0\n{MULTI}:v2\n")
    m = mirrors("source", DOCKER_MIRROR_IMAGES_EXTRA_LIST=str(listing))
    assert warm.warm(m.settings, log=lambda _: None) == []
    return m


@pytest.fixture
def clean_engine(docker_client):
    """Removes every image of this run from the engine, before and after the test."""
    def clean():
        for image in docker_client.images.list():
            if any(UID in tag for tag in image.tags):
                try:
                    docker_client.images.remove(image.id, force=True)
                except docker.errors.NotFound:
                    pass
    clean()
    yield
    clean()


def upstream_manifest(hub, repository, reference):
    return regapi.RegistryAPI(hub.url).get_manifest(repository, reference)


def host_config_digest(hub, repository, reference):
    top = upstream_manifest(hub, repository, reference)
    if top.is_index:
        child = manifests.select_platforms(top.json, {manifests.host_platform()})[0]
        top = upstream_manifest(hub, repository, child["digest"])
    return top.json["config"]["digest"], [layer["digest"] for layer in top.json["layers"]]


def test_file_names_are_safe_and_distinct():
    refs = ["nginx", "docker.io/library/nginx:latest",            # one image, one name
            "a/b_c:1", "a_b/c:1", "a/b/c:1",                       # alike once flattened
            "localhost:5000/x/y:t", "[::1]:5000/x:y", "quay.io/a/b__c-d.e:1.0_x-Y",
            f"quay.io/a/b@sha256:{'ab' * 32}", f"quay.io/a/b:t@sha256:{'cd' * 32}",
            "r.io/" + "/".join(["segment"] * 30) + ":" + "t" * 128]
    names = [archive_name(ref) for ref in refs]
    assert names[0] == names[1]
    assert names[0].startswith("docker.io_library_nginx_latest-") and names[0].endswith(".tar")
    assert len(set(names[1:])) == len(names) - 1
    for name in names:
        assert "/" not in name and not name.startswith((".", "-")) and len(name.encode()) < 255
        assert archive_format.ARCHIVE_NAME.match(name)  # prune recognises its own files


def test_archive_is_loadable_with_the_pulled_image_id_and_unchanged_layers(source, hub, pushed, docker_client,
                                                                             clean_engine):
    lines = []
    assert archive.archive_images(source.settings, docker_client, log=lines.append) == [], lines
    archives = source.root / "images/archives"
    config_digest, layers = host_config_digest(hub, OFFICIAL, "1.0")
    path = archives / archive_name(f"{OFFICIAL}:1.0")
    # The .sha256 is in sha256sum's own format: the real tool checks it.
    for name in (path.name, archive_name(f"{APP}:v1"), archive_name(f"{MULTI}:v2")):
        assert subprocess.run(["sha256sum", "--check", "--strict", f"{name}.sha256"], cwd=archives,
                              capture_output=True).returncode == 0
    # Layers are stored as the registry serves them: gzip, byte for byte.
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
        assert {"manifest.json", "index.json", "oci-layout", archive_format.META} <= names
        for digest in layers:
            data = tar.extractfile(archive_format.blob_path(digest)).read()
            assert data[:2] == b"\x1f\x8b" and "sha256:" + hashlib.sha256(data).hexdigest() == digest
        assert tar.extractfile(archive_format.blob_path(pushed["official"])).read() == \
            upstream_manifest(hub, OFFICIAL, "1.0").body

    # docker pull from the mirror, then docker load of the archive: one image ID.
    mirror_ref = f"127.0.0.1:{source.port}/{OFFICIAL}:1.0"
    pulled = docker_client.images.pull(mirror_ref)
    assert pulled.id == config_digest
    docker_client.images.remove(pulled.id, force=True)
    for ref, name in ((f"{OFFICIAL}:1.0", path.name), (f"{MULTI}:v2", archive_name(f"{MULTI}:v2"))):
        with open(archives / name, "rb") as f:
            docker_client.images.load(f)
        repository, tag = ref.split(":")
        assert docker_client.images.get(ref).id == host_config_digest(hub, repository, tag)[0]

    # A second run finds every archive current and rewrites none; the archive
    # of an image no longer listed stays until pruning is asked for.
    stale = archives / archive_name("gone/image:1")
    stale.write_bytes(b"old")
    (archives / f"{stale.name}.sha256").write_text(archive_format.checksum_line("0" * 64, stale.name))
    stamps = {p.name: p.stat().st_mtime_ns for p in archives.iterdir()}
    lines.clear()
    assert archive.archive_images(source.settings, docker_client, log=lines.append) == []
    assert sum("archive unchanged" in line for line in lines) == 3, lines
    assert {p.name: p.stat().st_mtime_ns for p in archives.iterdir()} == stamps
    assert archive.archive_images(source.settings, log=lines.append, prune=True) == []
    assert not stale.exists() and not (archives / f"{stale.name}.sha256").exists()
    assert len(list(archives.glob("*.tar"))) == 3


def test_restore_seeds_a_fresh_mirror_that_serves_with_the_upstream_down(source, hub, pushed, mirrors,
                                                                         docker_client, clean_engine):
    if not list((source.root / "images/archives").glob("*.tar")):
        assert archive.archive_images(source.settings, log=lambda _: None) == []
    fresh = mirrors("fresh")
    carried = fresh.root / "images/archives"
    shutil.copytree(source.root / "images/archives", carried, dirs_exist_ok=True)
    tampered = carried / archive_name(f"{APP}:v1")
    with open(tampered, "r+b") as f:  # one flipped byte deep inside a layer
        f.seek(tampered.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))

    lines = []
    failures = restore.restore(fresh.settings, docker_client, log=lines.append)
    assert failures == [str(tampered)], lines
    assert any(tampered.name in line and "checksum mismatch" in line for line in lines)
    # The maintenance registry is gone, and so is its config (it holds the http secret).
    assert not docker_client.containers.list(all=True, filters={"name": f"{fresh.prefix}-dockerhub-maintenance"})
    assert not list((fresh.root / "config").glob(".maintenance-*"))

    hub.stop()
    try:
        for repository, tag, key in ((OFFICIAL, "1.0", "official"), (MULTI, "v2", "multi")):
            image = docker_client.images.pull(f"127.0.0.1:{fresh.port}/{repository}", tag=tag)
            # The upstream's digest: of the index, for the multi-platform image.
            assert f"127.0.0.1:{fresh.port}/{repository}@{pushed[key]}" in image.attrs["RepoDigests"]
        # The tampered image was not restored: with the upstream down, nothing serves it.
        with pytest.raises(docker.errors.APIError):
            docker_client.images.pull(f"127.0.0.1:{fresh.port}/{APP}", tag="v1")
        # Through the CLI, by bare names, a second time: what is there already is fine.
        good = [archive_name(f"{OFFICIAL}:1.0"), archive_name(f"{MULTI}:v2")]
        again = fresh.run("restore", *good)
        assert again.stdout.count(": restored sha256:") == 2, again.stdout
        assert fresh.run("restore", check=False).returncode == 1  # the tampered one, again
    finally:
        hub.start()


def test_prune_removes_only_archives_no_longer_listed(tmp_path):
    archives = tmp_path / "mirror/images/archives"
    archives.mkdir(parents=True)
    for name in ("keep", "stale"):
        ref_name = archive_name(f"{name}:1")
        (archives / ref_name).write_bytes(b"x")
        (archives / f"{ref_name}.sha256").write_text(archive_format.checksum_line("0" * 64, ref_name))
    (archives / "notes.tar").write_text("not ours")
    layout = Layout(tmp_path / "mirror", tmp_path / "mirror/registry")
    assert host_archives.prune_archives(layout, {archive_name("keep:1")}, log=lambda _: None) == [archive_name("stale:1")]
    assert sorted(p.name for p in archives.iterdir()) == sorted(
        [archive_name("keep:1"), archive_name("keep:1") + ".sha256", "notes.tar"])
