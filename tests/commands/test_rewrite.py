"""mirror_image() and its faces (Jinja filter, Ansible plugin, CLI, extra_vars) on real registries.

The mirror here is Debian's distribution binary in proxy mode, run as a
plain process in front of a plain upstream registry on loopback: the
container-based mirror is tested elsewhere, and what is under test here is
that the rewritten reference names the right image on a real pull-through
cache.
"""

import json
import socket
import subprocess
import sys
import time

import pytest
import requests
import yaml
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from mirror import render
from mirror.services import rewrite
from mirror.config import dotconfig, extra_vars, settings
from mirror.model.settings import Settings
from mirror.config.kconfig import ROOT
from mirror.model import images
from mirror.model.endpoint import Endpoint
from support.configs import run_mirror, write_config
from support.upstream import MEDIA, UpstreamRegistry, free_port, push_image
from support.references import references

PLUGIN_DIR = ROOT / "ansible" / "filter_plugins"
ACCEPT = ", ".join(MEDIA[kind][what] for kind in MEDIA for what in ("manifest", "index"))


class PullThroughRegistry(UpstreamRegistry):
    """distribution in proxy mode in front of `remote_url`, as a plain process."""

    def __init__(self, root, remote_url: str):
        super().__init__(root)
        self.remote_url = remote_url

    def _write_config(self) -> None:
        super()._write_config()
        config = json.loads(self.config_path.read_text())
        config["proxy"] = {"remoteurl": self.remote_url}
        self.config_path.write_text(json.dumps(config, indent=2))


class TLSRegistry(UpstreamRegistry):
    """A plain registry that serves HTTPS with the given certificate."""

    def __init__(self, root, cert, key):
        super().__init__(root)
        self.cert, self.key = cert, key
        self.url = f"https://{self.host}"

    def _write_config(self) -> None:
        super()._write_config()
        config = json.loads(self.config_path.read_text())
        config["http"]["tls"] = {"certificate": str(self.cert), "key": str(self.key)}
        self.config_path.write_text(json.dumps(config, indent=2))


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with UpstreamRegistry(tmp_path_factory.mktemp("hub")) as registry:
        yield registry


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, hub):
    with PullThroughRegistry(tmp_path_factory.mktemp("proxy"), hub.url) as registry:
        yield registry


@pytest.fixture(autouse=True)
def fresh_process_state():
    # mirror_image() caches probes and settings per process; each test starts clean
    rewrite.forget_probes()
    rewrite.configure(None)
    yield
    rewrite.forget_probes()
    rewrite.configure(None)


def loaded(tmp_path, name=".config", olddefconfig=False, **overrides) -> Settings:
    return settings.load(write_config(tmp_path / name, olddefconfig=olddefconfig, **overrides))


def manifest_digest(reference: str) -> str:
    """Docker-Content-Digest of `reference`, asked of the registry the reference names."""
    ref = images.parse(reference)
    r = requests.get(f"http://{ref.registry}/v2/{ref.repository}/manifests/{ref.reference}",
                     headers={"Accept": ACCEPT}, timeout=30)
    assert r.status_code == 200, f"{reference}: HTTP {r.status_code} {r.text[:300]}"
    return r.headers["Docker-Content-Digest"]


# ------------------------------------------------------------ through a real mirror

@hsettings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ref=references(hosts=(None, "docker.io", "index.docker.io"), digest=False), pin=st.booleans())
def test_rewritten_reference_pulls_the_upstream_image_through_the_mirror(hub, proxy, ref, pin):
    upstream_image = images.parse(ref)
    digest = push_image(hub.url, upstream_image.repository, upstream_image.tag)
    if pin:
        ref = f"{ref}@{digest}"  # tag + digest: the digest is what gets pulled
    rewritten = images.rewrite(ref, "127.0.0.1", {"docker.io": proxy.port})
    assert rewritten.startswith(f"127.0.0.1:{proxy.port}/{upstream_image.repository}")
    assert manifest_digest(rewritten) == digest


def test_docker_pulls_the_rewritten_reference(docker_client, hub, proxy):
    digest = push_image(hub.url, "minio/minio", "RELEASE.rewrite-test")
    rewritten = images.rewrite("minio/minio:RELEASE.rewrite-test", "127.0.0.1", {"docker.io": proxy.port})
    assert rewritten == f"127.0.0.1:{proxy.port}/minio/minio:RELEASE.rewrite-test"
    image = docker_client.images.pull(rewritten)
    try:
        assert f"127.0.0.1:{proxy.port}/minio/minio@{digest}" in image.attrs["RepoDigests"]
    finally:
        docker_client.images.remove(image.id, force=True)


# ------------------------------------------------------------ mirror_image: probe and fallback

def test_answering_mirror_rewrites(tmp_path, proxy):
    current = loaded(tmp_path, DOCKER_MIRROR_PORT=proxy.port)
    assert rewrite.mirror_image("nginx", current) == f"127.0.0.1:{proxy.port}/library/nginx:latest"
    assert rewrite.mirror_image("vllm/vllm-openai:v1", current) == \
        f"127.0.0.1:{proxy.port}/vllm/vllm-openai:v1"
    # ghcr.io is not mirrored in this .config: fallback, the caller's string as given
    assert rewrite.mirror_image("ghcr.io/a/b", current) == "ghcr.io/a/b"


def test_mirror_not_answering_falls_back(tmp_path):
    current = loaded(tmp_path, DOCKER_MIRROR_PORT=free_port())
    assert rewrite.mirror_image("minio/minio:RELEASE.x", current) == "minio/minio:RELEASE.x"
    assert rewrite.mirror_image("minio/minio:RELEASE.x", current, probe=False) == \
        f"127.0.0.1:{current.port}/minio/minio:RELEASE.x"


def test_a_non_registry_on_the_port_is_not_a_mirror(tmp_path):
    # anything else answering HTTP on the port must not pass for a mirror
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        wait_for_any_http(f"http://127.0.0.1:{port}/v2/")
        current = loaded(tmp_path, DOCKER_MIRROR_PORT=port)
        assert rewrite.mirror_image("nginx", current) == "nginx"
    finally:
        server.terminate()
        server.wait(timeout=10)


def wait_for_any_http(url):
    for _ in range(100):
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise RuntimeError(f"{url} never answered")


@pytest.mark.parametrize("overrides", [{"USE_DOCKER_MIRROR": False}, {"ENABLE_DOCKER_MIRROR": False}])
def test_mirror_not_in_use_falls_back_even_when_answering(tmp_path, proxy, overrides):
    current = loaded(tmp_path, DOCKER_MIRROR_PORT=proxy.port, **overrides)
    assert rewrite.mirror_image("nginx", current) == "nginx"
    assert rewrite.mirror_image("nginx", current, probe=False) == "nginx"
    with pytest.raises(images.InvalidReference, match="'NGINX'"):
        rewrite.mirror_image("NGINX", current)  # a typo fails whether or not the mirror is used


def test_each_mirror_is_probed_once_per_process(tmp_path):
    with UpstreamRegistry(tmp_path / "short-lived") as registry:
        current = loaded(tmp_path, DOCKER_MIRROR_PORT=registry.port)
        assert rewrite.mirror_image("nginx", current) != "nginx"
    # gone now, but this process already decided: no 0.3 s wait per image
    assert rewrite.mirror_image("redis", current) == f"127.0.0.1:{registry.port}/library/redis:latest"
    rewrite.forget_probes()
    assert rewrite.mirror_image("redis", current) == "redis"


def test_tls_mirror_is_probed_over_tls(tmp_path, monkeypatch):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # lets the helper's readiness check verify it
    with TLSRegistry(tmp_path / "tls", cert, key) as registry:
        plain = loaded(tmp_path, "plain.config", DOCKER_MIRROR_PORT=registry.port)
        tls = loaded(tmp_path, "tls.config", DOCKER_MIRROR_PORT=registry.port, DOCKER_MIRROR_TLS=True,
                     DOCKER_MIRROR_TLS_CERTIFICATE=str(cert), DOCKER_MIRROR_TLS_KEY=str(key))
        # a plain-HTTP probe of a TLS port sees no registry
        assert rewrite.mirror_image("nginx", plain) == "nginx"
        assert rewrite.mirror_image("nginx", tls) == f"127.0.0.1:{registry.port}/library/nginx:latest"
        assert extra_vars.playbook_variables(tls)["docker_mirror_urls"] == {
            "docker.io": f"https://127.0.0.1:{registry.port}"}


def test_default_settings_come_from_configure_or_kconfig_config(tmp_path, monkeypatch, proxy):
    path = write_config(tmp_path / "env.config", DOCKER_MIRROR_PORT=proxy.port)
    monkeypatch.setenv("KCONFIG_CONFIG", str(path))
    assert rewrite.mirror_image("nginx") == f"127.0.0.1:{proxy.port}/library/nginx:latest"
    rewrite.configure(loaded(tmp_path, USE_DOCKER_MIRROR=False))
    assert rewrite.mirror_image("nginx") == "nginx"


def test_several_references_fail_whole_on_one_invalid(tmp_path):
    current = loaded(tmp_path)
    with pytest.raises(images.InvalidReference, match="'a//b'"):
        rewrite.mirror_images(["nginx", "a//b"], current, probe=False)


@pytest.mark.parametrize("bind, host", [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"),
                                        ("192.168.1.5", "192.168.1.5"), ("::", "[::1]"),
                                        ("fd00::5", "[fd00::5]")])
def test_client_host(bind, host):
    assert Endpoint.of(bind, 5000, tls=False).client_host == host


# ------------------------------------------------------------ Jinja filter

TEMPLATE = "{{ 'nginx' | docker_mirror_image }} {{ 'quay.io/coreos/etcd:v3.5.5' | docker_mirror_image }}"


def test_jinja_filter_in_the_project_environment(tmp_path, proxy):
    env = render.environment()
    answering = loaded(tmp_path, DOCKER_MIRROR_PORT=proxy.port)
    text = env.from_string(TEMPLATE).render(**rewrite.template_variables(answering))
    assert text == f"127.0.0.1:{proxy.port}/library/nginx:latest quay.io/coreos/etcd:v3.5.5"
    dead = loaded(tmp_path, "dead.config", DOCKER_MIRROR_PORT=free_port())
    text = env.from_string(TEMPLATE).render(**rewrite.template_variables(dead))
    assert text == "nginx quay.io/coreos/etcd:v3.5.5"
    # the Ansible call shape works too, explicit arguments over the context
    text = env.from_string("{{ 'quay.io/coreos/etcd:v3.5.5' | docker_mirror_image('10.0.0.2', "
                           "{'quay.io': 5002}, true) }}").render(**rewrite.template_variables(dead))
    assert text == "10.0.0.2:5002/coreos/etcd:v3.5.5"


def test_jinja_filter_without_mirror_variables_says_what_is_missing():
    import jinja2
    with pytest.raises(jinja2.UndefinedError, match="docker_mirror_address"):
        render.environment().from_string(TEMPLATE).render()


# ------------------------------------------------------------ extra_vars + Ansible plugin

def test_extra_vars_carry_what_a_playbook_needs(tmp_path):
    config = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_BIND_ADDRESS="0.0.0.0",
                          DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_QUAY=True)
    out = extra_vars.write(dotconfig.load(config), tmp_path / "extra_vars.yaml")
    ev = yaml.safe_load(out.read_text())
    assert ev["use_docker_mirror"] is True
    # A wildcard bind: other hosts reach this one by its name (DOCKER_MIRROR_CLIENT_ADDRESS unset).
    assert ev["docker_mirror_address"] == socket.gethostname()
    assert ev["docker_mirror_ports"] == {"docker.io": 5000, "ghcr.io": 5001, "quay.io": 5002}
    assert ev["docker_mirror_urls"]["quay.io"] == f"http://{socket.gethostname()}:5002"


def test_derived_variable_names_are_not_kconfig_symbols():
    text = "\n".join(p.read_text() for p in (ROOT / "kconfig").glob("Kconfig*"))
    for name in ("docker_mirror_address", "docker_mirror_ports", "docker_mirror_urls"):
        assert f"config {name.upper()}\n" not in text, f"{name} would hide the Kconfig symbol"


PLUGIN_REFS = ["minio/minio:RELEASE.x", "nginx", "ghcr.io/vllm-project/production-stack/router:latest",
               "quay.io/coreos/etcd:v3.5.5", f"lmcache/vllm-openai@sha256:{'0' * 64}", "example.com/a/b"]


def run_plugin(args: list) -> subprocess.CompletedProcess:
    # -I: no PYTHONPATH, no current directory on sys.path; only the plugin
    # directory, as Ansible loads it
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import docker_mirror; "
            "f = docker_mirror.FilterModule().filters()['docker_mirror_image']; "
            "a = json.loads(sys.argv[2]); "
            "print(json.dumps([f(r, a['address'], a['ports'], a['enabled']) for r in a['refs']]))")
    return subprocess.run([sys.executable, "-I", "-c", code, str(PLUGIN_DIR), json.dumps(args)],
                          cwd="/", capture_output=True, text=True, timeout=60)


def test_ansible_plugin_loads_standalone_and_agrees_with_mirror_image(tmp_path):
    config = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_GHCR=True,
                          DOCKER_MIRROR_QUAY=True)
    ev = yaml.safe_load(extra_vars.write(dotconfig.load(config), tmp_path / "ev.yaml").read_text())
    current = settings.load(config)
    for enabled in (True, False):
        result = run_plugin({"refs": PLUGIN_REFS, "address": ev["docker_mirror_address"],
                             "ports": ev["docker_mirror_ports"], "enabled": enabled})
        assert result.returncode == 0, result.stderr
        expected = [rewrite.mirror_image(r, current, probe=False) if enabled else r for r in PLUGIN_REFS]
        assert json.loads(result.stdout) == expected
        if enabled:  # the comparison above must not be identity against identity
            assert expected[:4] == ["127.0.0.1:5000/minio/minio:RELEASE.x",
                                    "127.0.0.1:5000/library/nginx:latest",
                                    "127.0.0.1:5001/vllm-project/production-stack/router:latest",
                                    "127.0.0.1:5002/coreos/etcd:v3.5.5"]


def test_ansible_plugin_refuses_an_invalid_reference():
    result = run_plugin({"refs": ["Bad/Ref"], "address": "127.0.0.1",
                         "ports": {"docker.io": 5000}, "enabled": True})
    assert result.returncode != 0
    assert "InvalidReference" in result.stderr and "'Bad/Ref'" in result.stderr


# ------------------------------------------------------------ CLI

def test_cli_image_url(tmp_path, proxy):
    config = write_config(tmp_path / ".config", olddefconfig=True, DOCKER_MIRROR_PORT=proxy.port,
                          DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_GHCR_PORT=free_port())
    refs = ["minio/minio:RELEASE.x", "nginx", "ghcr.io/vllm-project/production-stack/router:latest",
            "quay.io/coreos/etcd:v3.5.5"]
    hub_mirror = f"127.0.0.1:{proxy.port}"
    # probing: Docker Hub's mirror answers, ghcr.io's port is dead, quay.io is not mirrored
    out = run_mirror("image-url", *refs, config=config).stdout.splitlines()
    assert out == [f"{hub_mirror}/minio/minio:RELEASE.x", f"{hub_mirror}/library/nginx:latest",
                   refs[2], refs[3]]
    ghcr_port = settings.load(config).upstream("ghcr").port
    out = run_mirror("image-url", "--no-probe", *refs, config=config).stdout.splitlines()
    assert out[2] == f"127.0.0.1:{ghcr_port}/vllm-project/production-stack/router:latest"


def test_cli_image_url_invalid_reference(tmp_path):
    config = write_config(tmp_path / ".config")
    result = run_mirror("image-url", "--no-probe", "nginx", "NGINX:1", config=config, check=False)
    assert result.returncode == 2
    assert "'NGINX:1'" in result.stderr and "lowercase" in result.stderr
    assert result.stdout == ""  # nothing half-printed
