"""The replicas' generated files: haproxy.cfg checked by HAProxy itself, redis.conf by a real
Redis, each replica's registry config (pure parts; no Docker engine)."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import time

import pytest
import requests
import yaml

from mirror import render
from mirror.config import settings
from mirror.engine import containers, replicas, tool_images
from mirror.engine.replicas import servers
from mirror.engine.registry_image import RegistryImage
from mirror.host.layout import Layout
from mirror.model.modes import PULL_THROUGH
from support.configs import write_config
from support.replicas import free_port_block
from support.upstream import free_port

S3 = {"DOCKER_MIRROR_STORAGE_FILESYSTEM": False, "DOCKER_MIRROR_STORAGE_S3": True,
      "DOCKER_MIRROR_S3_ENDPOINT": "http://127.0.0.1:8333", "DOCKER_MIRROR_S3_BUCKET": "mirror-cache",
      "DOCKER_MIRROR_S3_ACCESS_KEY_ID": "AKIDEXAMPLE", "DOCKER_MIRROR_S3_SECRET_KEY": "secret-key"}
IMAGE = RegistryImage("registry:2", "sha256:" + "0" * 64, 2, "/etc/docker/registry/config.yml", True)


def load(tmp_path, **overrides):
    return settings.load(write_config(tmp_path / ".config", **{**S3, **overrides}))


def haproxy_check(tmp_path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    return subprocess.run([shutil.which("haproxy") or "/usr/sbin/haproxy", "-c", "-f", str(path)],
                          capture_output=True, text=True, timeout=30)


def test_haproxy_cfg_is_valid_and_balances_over_every_replica(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_REPLICAS=3, DOCKER_MIRROR_GHCR=True)
    text = render.haproxy_config(s, servers(s))
    checked = haproxy_check(tmp_path, text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "bind 127.0.0.1:5000" in text and "bind 127.0.0.1:5001" in text
    for key, port in (("dockerhub", 25000), ("ghcr", 25016)):
        for i in range(3):
            assert f"server {s.container_prefix}-{key}-r{i + 1} 127.0.0.1:{port + i}" in text
    assert text.count("option httpchk GET /v2/") == 2
    assert "rstatus ^(200|401)$" in text
    assert "mode tcp" in text and "check-ssl" not in text
    assert f"bind 127.0.0.1:{s.replicas.stats_port}" in text
    # With every replica out, the backends' last resort is a registry API 503 (no check on it),
    # from a listener of its own on no port (test_every_replica_down_... below runs it).
    last_resort = f"abns@docker-mirror-unavailable-{s.replicas.stats_port}"
    assert text.count(f"server unavailable {last_resort} backup no-check") == 2
    assert f"bind {last_resort}" in text and "http-request return status 503" in text
    directives = [line.split()[0] for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert not {"user", "group", "chroot"} & set(directives)   # nothing to drop to in the image


def self_signed(tmp_path) -> tuple:
    """A certificate and key for 127.0.0.1, laid out as HAProxy's container has them
    (the key beside the certificate, under the same name + ".key")."""
    cert = tmp_path / "mirror.pem"
    key = tmp_path / "mirror.pem.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def on_this_host(text: str, cert) -> str:
    """The rendered config, run by this host's HAProxy rather than in its container."""
    assert render.HAPROXY_TLS_CERT in text
    return text.replace(render.HAPROXY_TLS_CERT, str(cert))


def test_haproxy_cfg_with_tls_checks_over_tls_and_answers_its_503_over_tls(tmp_path):
    cert, key = self_signed(tmp_path)
    s = load(tmp_path, DOCKER_MIRROR_REPLICAS=2, DOCKER_MIRROR_TLS=True,
             DOCKER_MIRROR_TLS_CERTIFICATE=str(cert), DOCKER_MIRROR_TLS_KEY=str(key))
    text = render.haproxy_config(s, servers(s))
    assert "check-ssl verify none" in text and "mode tcp" in text   # TLS passes through
    # The last resort terminates TLS itself: a plain-HTTP 503 would be no answer to a TLS client.
    assert text.count("backup no-check") == 1 and f"ssl crt {render.HAPROXY_TLS_CERT}" in text
    checked = haproxy_check(tmp_path, on_this_host(text, cert))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_reissued_certificate_recreates_haproxy_and_no_tls_leaves_its_hash_alone(tmp_path):
    """HAProxy reads its certificate once, at start: new bytes at the same path need a new container."""
    cert, key = self_signed(tmp_path)
    s = load(tmp_path, DOCKER_MIRROR_REPLICAS=2, DOCKER_MIRROR_TLS=True,
             DOCKER_MIRROR_TLS_CERTIFICATE=str(cert), DOCKER_MIRROR_TLS_KEY=str(key))
    image = tool_images.ToolImage("docker-mirror/haproxy:test", "sha256:" + "2" * 64)
    lb = replicas.plan(s, Layout.of(s))[replicas.LB]
    assert {target for _, target in lb.files} == {render.HAPROXY_TLS_CERT, render.HAPROXY_TLS_KEY}
    before = replicas._hash(lb, image)
    self_signed(tmp_path)   # re-issued in place
    assert replicas._hash(replicas.plan(s, Layout.of(s))[replicas.LB], image) != before
    plain = load(tmp_path, DOCKER_MIRROR_REPLICAS=2)
    assert replicas.plan(plain, Layout.of(plain))[replicas.LB].files == ()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
def test_every_replica_down_the_mirror_port_answers_503_never_the_statistics(tmp_path, tls):
    """A real HAProxy from the rendered config, no replica up: the mirror's public port gives a
    registry API 503 for any path, /stats too, over TLS when the mirror has it (with the
    mirror's certificate); the statistics stay on their loopback port."""
    cert_options, verify = {}, True
    if tls:
        cert, key = self_signed(tmp_path)
        cert_options, verify = {"DOCKER_MIRROR_TLS": True, "DOCKER_MIRROR_TLS_CERTIFICATE": str(cert),
                                "DOCKER_MIRROR_TLS_KEY": str(key)}, str(cert)
    s = load(tmp_path, DOCKER_MIRROR_REPLICAS=2, DOCKER_MIRROR_PORT=free_port(),
             DOCKER_MIRROR_REPLICA_PORT_BASE=free_port_block(), **cert_options)
    text = render.haproxy_config(s, servers(s))
    path = tmp_path / "haproxy.cfg"
    path.write_text(on_this_host(text, cert) if tls else text)
    proc = subprocess.Popen([shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-f", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    mirror = f"{'https' if tls else 'http'}://127.0.0.1:{s.upstreams[0].endpoint.port}"
    stats = f"http://127.0.0.1:{s.replicas.stats_port}/stats"
    try:
        deadline = time.monotonic() + 15
        while True:   # until HAProxy listens and has marked both replicas down
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                if requests.get(f"{mirror}/v2/", timeout=2, verify=verify).status_code == 503:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "HAProxy never answered 503 on the mirror's port"
            time.sleep(0.1)
        for where in ("/stats", "/stats;csv", "/v2/library/busybox/manifests/1.36"):
            answer = requests.get(mirror + where, timeout=5, verify=verify)
            assert answer.status_code == 503, (where, answer.text[:200])
            assert answer.json()["errors"][0]["code"] == "UNAVAILABLE", where
            assert answer.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
            assert "Statistics Report" not in answer.text
        page = requests.get(stats, timeout=5)
        assert page.status_code == 200 and "Statistics Report" in page.text
        assert "UNAVAILABLE" in requests.get(mirror + "/", timeout=5, verify=verify).text
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_haproxy_rejects_a_broken_config(tmp_path):
    """The check above can fail: HAProxy refuses what is not a config."""
    assert haproxy_check(tmp_path, "frontend x\n    bind 127.0.0.1:notaport\n").returncode != 0


def test_redis_conf_runs_in_a_real_redis_with_allkeys_lru(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_REPLICAS=2)
    port = free_port()
    s = dataclasses.replace(s, replicas=dataclasses.replace(s.replicas, port_base=port - 80))
    path = tmp_path / "redis.conf"
    password = "p" * 43
    path.write_text(render.redis_config(s, password=password))
    proc = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "redis never listened"
                time.sleep(0.05)
        with sock:
            sock.sendall(b"FLUSHALL\r\n")   # no AUTH yet: refused
            assert sock.recv(4096).startswith(b"-NOAUTH")
            sock.sendall(f"AUTH {password}\r\n".encode())
            assert sock.recv(4096) == b"+OK\r\n"
            sock.sendall(b"CONFIG GET maxmemory-policy\r\nCONFIG GET maxmemory\r\nCONFIG GET save\r\n")
            time.sleep(0.2)
            answer = sock.recv(4096).decode()
        assert "allkeys-lru" in answer and str(256 * 1024 * 1024) in answer
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_replica_registry_configs(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_REPLICAS=3, DOCKER_MIRROR_GHCR=True, DOCKER_MIRROR_PATH=str(tmp_path / "m"))
    specs = containers.plan(s, Layout.of(s), IMAGE, {"dockerhub": PULL_THROUGH, "ghcr": PULL_THROUGH}, "SECRET")
    assert [spec.name for spec in specs] == [f"{s.container_prefix}-{k}-r{i}" for k in ("dockerhub", "ghcr")
                                             for i in (1, 2, 3)]
    loaded = [yaml.safe_load(spec.config_text) for spec in specs]
    assert {c["http"]["secret"] for c in loaded} == {"SECRET"}
    assert [c["http"]["addr"] for c in loaded] == [f"127.0.0.1:{p}" for p in
                                                   (25000, 25001, 25002, 25016, 25017, 25018)]
    assert [c["http"]["debug"]["addr"] for c in loaded][:1] == ["127.0.0.1:35000"]
    assert {c["storage"]["cache"]["blobdescriptor"] for c in loaded} == {"redis"}
    assert [c["redis"]["db"] for c in loaded] == [0, 0, 0, 1, 1, 1]
    assert {c["redis"]["addr"] for c in loaded} == {"127.0.0.1:25080"}
    assert {c["storage"]["s3"]["rootdirectory"] for c in loaded[:3]} == {"/docker-mirror/dockerhub"}
    assert not any(c["storage"]["delete"]["enabled"] for c in loaded)
    assert {spec.config_path for spec in specs} == {str(tmp_path / "m/config" / f"{k}-r{i}.yml")
                                                    for k in ("dockerhub", "ghcr") for i in (1, 2, 3)}
    assert len({spec.config_hash for spec in specs}) == 6


def test_one_replica_keeps_the_single_mirror(tmp_path):
    s = load(tmp_path, DOCKER_MIRROR_PATH=str(tmp_path / "m"))
    specs = containers.plan(s, Layout.of(s), IMAGE, {"dockerhub": PULL_THROUGH}, "SECRET")
    assert [spec.name for spec in specs] == [f"{s.container_prefix}-dockerhub"]
    config = yaml.safe_load(specs[0].config_text)
    assert config["storage"]["cache"]["blobdescriptor"] == "inmemory" and "redis" not in config
    assert config["http"]["addr"] == "127.0.0.1:5000"


@pytest.mark.parametrize("bind", ["0.0.0.0", "127.0.0.1"])
def test_replicas_listen_on_loopback_whatever_the_bind(tmp_path, bind):
    s = load(tmp_path, DOCKER_MIRROR_REPLICAS=2, DOCKER_MIRROR_BIND_ADDRESS=bind,
             DOCKER_MIRROR_PATH=str(tmp_path / "m"))
    specs = containers.plan(s, Layout.of(s), IMAGE, {"dockerhub": PULL_THROUGH}, "SECRET")
    assert {yaml.safe_load(spec.config_text)["http"]["addr"].split(":")[0] for spec in specs} == {"127.0.0.1"}
    assert f"bind {bind}:5000" in render.haproxy_config(s, servers(s))
