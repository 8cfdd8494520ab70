"""Podman, Buildah and Skopeo (containers/image) pull through the mirror with only the files
`docker-mirror-clients` wrote, under a root of the test's own (never this host's /etc):
its registries.conf.d drop-in given as CONTAINERS_REGISTRIES_CONF / --registries-conf, and
for TLS the CA it wrote in certs.d/HOST:PORT given as --cert-dir. Mirrors are the registry
engine built here in proxy mode with its access log on (the request log that shows each
pull), in front of local upstream registries; one upstream stands for a custom registry
named by its loopback address, so a pull with the mirror stopped falls back to it.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile
import tomllib
import uuid
from pathlib import Path

import pytest

from mirror.config import settings as settings_mod
from mirror.host.client_files import ClientPaths
from mirror.services import clients
from support.configs import write_config
from support.logged_proxy import CLIENT_USER, LoggedProxy, tls_htpasswd_mirror
from support.upstream import UpstreamRegistry, push_image

pytestmark = pytest.mark.engine

TOOLS = ("podman", "buildah", "skopeo")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Docker Hub and a custom registry (named 127.0.0.1:PORT, plain HTTP) upstream, each with a
    plain-HTTP mirror; the settings for them, applied under a root of the test's own."""
    root = tmp_path_factory.mktemp("containers-clients")
    tag = uuid.uuid4().hex[:8]
    started = []
    try:
        hub_up = UpstreamRegistry(root / "hub-up").start()
        custom_up = UpstreamRegistry(root / "custom-up").start()
        started += [hub_up, custom_up]
        digests = {"hub": push_image(hub_up.url, "library/alpine", tag),
                   "app": push_image(custom_up.url, "dmtest/app", tag)}
        for tool in TOOLS:
            digests[tool] = push_image(custom_up.url, "dmtest/app", f"{tag}-{tool}-fallback")
        hub = LoggedProxy(root / "hub-mirror", hub_up.url).start()
        custom = LoggedProxy(root / "custom-mirror", custom_up.url).start()
        started += [hub, custom]
        config = write_config(root / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(root / "mirror"),
                              DOCKER_MIRROR_PORT=hub.port, DOCKER_MIRROR_CUSTOM=True,
                              DOCKER_MIRROR_CUSTOM_REGISTRY=custom_up.host, DOCKER_MIRROR_CUSTOM_PORT=custom.port,
                              DOCKER_MIRROR_CUSTOM_REMOTE_URL=custom_up.url)
        settings = settings_mod.load(config)
        paths = ClientPaths.under(root / "host", search_path="/usr/bin:/usr/sbin")   # the real tools are found there
        report = clients.apply(settings, paths, reload=False)
        yield dict(root=root, tag=tag, hub=hub, custom=custom, custom_up=custom_up, digests=digests,
                   settings=settings, paths=paths, report=report,
                   drop_in=paths.containers_dir / "registries.conf.d/50-docker-mirror.conf")
    finally:
        for registry in reversed(started):
            registry.stop()


@pytest.fixture
def store():
    """Storage of a pull of the test's own; short (podman refuses a runroot over 50 characters)."""
    path = Path(tempfile.mkdtemp(prefix="dmc-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pull(tool: str, ref: str, conf: Path, store: Path, *, cert_dir=None, auth=None) -> str:
    """`ref` pulled by the real `tool` with `conf` as its registries.conf; the digest it got.
    `auth`: an auth.json (containers/image looks a mirror's credentials up by its HOST:PORT)."""
    env = {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(conf)}
    if auth:
        env["REGISTRY_AUTH_FILE"] = str(auth)
    extra = [f"--cert-dir={cert_dir}"] if cert_dir and tool != "skopeo" else []
    storage = ["--root", str(store / "root"), "--runroot", str(store / "run"), "--storage-driver", "vfs"]
    if tool == "podman":
        argv = ["podman", *storage, "pull", "--quiet", *extra, ref]
    elif tool == "buildah":
        argv = ["buildah", *storage, "pull", "--quiet", *extra, ref]
    else:
        src = [f"--src-cert-dir={cert_dir}"] if cert_dir else []
        # dir: keeps the manifest's bytes (oci: would convert it), --all the whole index
        argv = ["skopeo", "--registries-conf", str(conf), "copy", "--quiet", "--all", *src, f"docker://{ref}",
                f"dir:{store / 'dir'}"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
    if tool == "skopeo":
        return "sha256:" + hashlib.sha256((store / "dir/manifest.json").read_bytes()).hexdigest()
    digests = subprocess.run([tool, *storage, "images", "--format", "{{.Digest}}", ref],
                             capture_output=True, text=True, check=True).stdout.split()
    return digests[0]


def test_the_drop_in_is_written_where_containers_image_reads_it(world):
    text = world["drop_in"].read_text()
    assert f'prefix = "{world["custom_up"].host}"' in text and f'location = "127.0.0.1:{world["hub"].port}"' in text
    lines = "\n".join(world["report"].lines)
    assert "client Podman, Buildah, Skopeo, CRI-O (containers/image): configured (podman on PATH)" in lines
    assert "client BuildKit (buildkitd outside dockerd): absent" in lines
    assert "auth.json per user" in lines


@pytest.mark.parametrize("tool", TOOLS)
def test_each_tool_pulls_through_the_mirror_over_plain_http(world, tool, store):
    tag, custom = world["tag"], world["custom"]
    ref = f"{world['custom_up'].host}/dmtest/app:{tag}"
    assert pull(tool, ref, world["drop_in"], store) == world["digests"]["app"]
    # the mirror's request log shows the tool's request for the manifest
    assert custom.requests_for(f"/v2/dmtest/app/manifests/{tag}"), custom.log_tail()
    assert custom.cached("dmtest/app", tag)


def test_docker_hub_images_go_through_the_docker_hub_mirror(world, store):
    hub, tag = world["hub"], world["tag"]
    # docker.io is not reachable here: only the mirror can have answered
    assert pull("podman", f"docker.io/library/alpine:{tag}", world["drop_in"], store) == world["digests"]["hub"]
    assert any("containers/" in line or "libpod" in line
               for line in hub.requests_for(f"/v2/library/alpine/manifests/{tag}"))


@pytest.mark.parametrize("tool", TOOLS)
def test_with_the_mirror_down_the_pull_falls_back_to_the_registry(world, tool, store):
    custom, tag = world["custom"], f"{world['tag']}-{tool}-fallback"
    custom.stop()
    try:
        ref = f"{world['custom_up'].host}/dmtest/app:{tag}"
        assert pull(tool, ref, world["drop_in"], store) == world["digests"][tool]
    finally:
        custom.start()
    assert not custom.cached("dmtest/app", tag)


def test_undo_removes_every_file_it_wrote(world):
    clients.undo(world["settings"], reload=False)
    left = [p for p in (world["root"] / "host").rglob("*") if p.is_file()]
    assert left == []


# ---------------------------------------------------------------- TLS and htpasswd

@pytest.fixture(scope="module")
def tls_world(tmp_path_factory):
    """A custom registry's mirror over TLS (the generated CA and server certificate) behind
    htpasswd, clients set up by apply under a root of the test's own; the client user's
    credentials in an auth file made by a real `podman login` (the product does not write
    auth.json: it is per user)."""
    root = tmp_path_factory.mktemp("containers-tls")
    tag = uuid.uuid4().hex[:8]
    with UpstreamRegistry(root / "up") as upstream:
        digest = push_image(upstream.url, "library/busybox", tag)
        with tls_htpasswd_mirror(root, upstream, lambda port: dict(
                DOCKER_MIRROR_CUSTOM=True, DOCKER_MIRROR_CUSTOM_REGISTRY=upstream.host,
                DOCKER_MIRROR_CUSTOM_PORT=port, DOCKER_MIRROR_CUSTOM_REMOTE_URL=upstream.url)) as (settings, mirror):
            paths = ClientPaths.under(root / "host", search_path="/usr/bin:/usr/sbin")
            report = clients.apply(settings, paths, reload=False)
            cert_dir = paths.containers_dir / "certs.d" / mirror.host
            auth = root / "auth.json"
            user, password = CLIENT_USER
            subprocess.run(["podman", "login", "--authfile", str(auth), "--cert-dir", str(cert_dir),
                            "--username", user, "--password-stdin", mirror.host],
                           input=password, capture_output=True, text=True, check=True, timeout=60)
            yield dict(root=root, tag=tag, digest=digest, mirror=mirror, settings=settings, paths=paths,
                       report=report, drop_in=paths.containers_dir / "registries.conf.d/50-docker-mirror.conf",
                       cert_dir=cert_dir, auth=auth, ref=f"{upstream.host}/library/busybox:{tag}")


@pytest.mark.parametrize("tool", TOOLS)
def test_each_tool_pulls_over_tls_with_the_generated_ca_and_the_client_user(tls_world, tool, store):
    w = tls_world
    assert (w["cert_dir"] / "ca.crt").read_bytes() == Path(w["settings"].tls_ca).read_bytes()
    registries = tomllib.loads(w["drop_in"].read_text())["registry"]
    assert [m.get("insecure", False) for r in registries for m in r["mirror"]] == [False, False]   # TLS, verified
    assert pull(tool, w["ref"], w["drop_in"], store, cert_dir=w["cert_dir"], auth=w["auth"]) == w["digest"]
    assert w["mirror"].requests_for(f"/v2/library/busybox/manifests/{w['tag']}")
    # the registry's own log names the htpasswd user of the request
    assert any("auth.user.name=alice" in line and f"uri=/v2/library/busybox/manifests/{w['tag']}" in line
               for line in w["mirror"].log_path.read_text().splitlines()), w["mirror"].log_tail()


def test_tls_undo_takes_the_ca_and_the_drop_in_back(tls_world):
    clients.undo(tls_world["settings"], reload=False)
    assert [p for p in (tls_world["root"] / "host").rglob("*") if p.is_file()] == []
