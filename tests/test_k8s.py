"""make docker-mirror-k8s: the cluster's manifests from .config, checked against
the Kubernetes schemas (kubernetes-validate, offline) and against what the
host renders from the same templates. No cluster runs here: these tests read
the manifests, they do not apply them (tests/commands/test_k8s_pod.py runs one
pod's containers on the engine)."""

import base64
import json
import os
import stat
import subprocess
import tomllib

import kubernetes_validate
import pytest
import yaml

from mirror import render
from mirror.services import k8s_manifests as k8s
from mirror.config import settings as settings_module
from mirror.config.kconfig import ROOT
from mirror.host.htpasswd import bcrypt_matches
from mirror.model.modes import PULL_THROUGH
from support.configs import write_config
from support.k8s_manifests import (AZURE, CREDENTIALS, CUSTOM_URL_PASSWORD, KUBERNETES, NEWEST, S3,
                                   UPSTREAM_PASSWORD, by_kind, by_kind_of, by_kind_of_text, config_of, container, documents,
                                   htpasswd_file, run, secret_values, tls_files)  # noqa: F401 -- fixtures


CASES = {
    "default": {},
    "all-upstreams, credentials": CREDENTIALS,
    "s3, three replicas, credentials": {**S3, **CREDENTIALS, "DOCKER_MIRROR_REPLICAS": 3},
    "azure, two replicas": {**AZURE, "DOCKER_MIRROR_REPLICAS": 2},
    "refresh off, plain registry": {"DOCKER_MIRROR_REFRESH": False, "DOCKER_MIRROR_PULL_THROUGH_CACHE": False},
    "weekly, all platforms": {"DOCKER_MIRROR_REFRESH_ON_CALENDAR": "Sun *-*-* 04:15",
                              "DOCKER_MIRROR_PULL_ALL_PLATFORMS": True},
}


@pytest.mark.parametrize("case", CASES)
def test_every_manifest_validates_against_the_kubernetes_schemas(tmp_path, case, htpasswd_file, tls_files, capsys):
    overrides = dict(CASES[case])
    if case == "s3, three replicas, credentials":
        overrides.update(DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(htpasswd_file),
                         DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_TLS_GIVEN=True,
                         DOCKER_MIRROR_TLS_CERTIFICATE=str(tls_files / "cert.pem"),
                         DOCKER_MIRROR_TLS_KEY=str(tls_files / "key.pem"))
    config = write_config(tmp_path / ".config", **overrides)
    loaded = settings_module.load(config)
    out = tmp_path / "k8s"
    assert run(config, out) == 0, capsys.readouterr().err

    count = 0
    for name, docs in documents(out).items():
        assert docs, name
        for doc in docs:
            # strict: an unknown or misspelt field is an error too
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
            kubernetes_validate.validate(doc, NEWEST, strict=True)
            count += 1
    kinds = by_kind(out)
    names = k8s.names(loaded)
    assert set(kinds["Deployment"]) == set(kinds["Service"]) == set(names.values())
    # each registry's config, and the nodes' files: containerd's hosts.toml (a Secret instead with
    # a client user, none here) and CRI-O's registries.conf drop-in, copied by one DaemonSet
    assert set(kinds["ConfigMap"]) == {f"{n}-config" for n in names.values()} | {
        "docker-mirror-containerd-hosts", "docker-mirror-registries-conf"}
    assert len(kinds["Secret"]) == 1 and set(kinds["DaemonSet"]) == {"docker-mirror-containerd-hosts"}
    filesystem = loaded.storage.backend == "filesystem"
    assert set(kinds.get("PersistentVolumeClaim", {})) == ({f"{n}-storage" for n in names.values()}
                                                           if filesystem else set())
    cronjobs = kinds.get("CronJob", {})
    expected = set()
    if loaded.refresh:
        expected.add(f"{loaded.container_prefix}-refresh")
        if filesystem:
            expected |= {f"{n}-gc" for n in names.values()}
    assert set(cronjobs) == expected
    for job in cronjobs.values():
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
    for name, deployment in kinds["Deployment"].items():
        assert deployment["spec"]["replicas"] == loaded.replicas.count
        spread = deployment["spec"]["template"]["spec"].get("topologySpreadConstraints")
        if loaded.replicas.count > 1:
            # a rollout or a drained node never takes every replica at once
            assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
            assert kinds["PodDisruptionBudget"][name]["spec"]["maxUnavailable"] == 1
            assert spread[0]["topologyKey"] == "kubernetes.io/hostname"
        else:
            assert name not in kinds.get("PodDisruptionBudget", {}) and spread is None
    assert count >= 5


def test_a_change_of_port_or_replicas_shows_in_the_manifests(tmp_path, capsys):
    def render_with(name, **overrides):
        config = write_config(tmp_path / f"{name}.config", **S3, **overrides)
        out = tmp_path / name
        assert run(config, out) == 0, capsys.readouterr().err
        return by_kind(out)

    before = render_with("before")
    after = render_with("after", DOCKER_MIRROR_PORT=5123, DOCKER_MIRROR_REPLICAS=3)
    for kinds, port, replicas in ((before, 5000, 1), (after, 5123, 3)):
        deployment = kinds["Deployment"]["docker-mirror-dockerhub"]
        assert deployment["spec"]["replicas"] == replicas
        assert container(deployment)["ports"][0]["containerPort"] == port
        (service_port,) = kinds["Service"]["docker-mirror-dockerhub"]["spec"]["ports"]
        assert service_port["port"] == port
        assert yaml.safe_load(config_of(kinds, "docker-mirror-dockerhub"))["http"]["addr"] == f"0.0.0.0:{port}"
        hosts = kinds["ConfigMap"]["docker-mirror-containerd-hosts"]["data"]["dockerhub.toml"]
        assert f"http://docker-mirror-dockerhub.docker-mirror.svc.cluster.local:{port}" in tomllib.loads(hosts)["host"]
        refresh = kinds["CronJob"]["docker-mirror-refresh"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        refs = refresh["containers"][0]["command"][4:]
        assert refs and all(f".svc.cluster.local:{port}/" in ref for ref in refs)
    # the checksum of config.yml moved with the port: the pods roll
    annotation = "docker-mirror/config-sha256"
    assert (before["Deployment"]["docker-mirror-dockerhub"]["spec"]["template"]["metadata"]["annotations"][annotation]
            != after["Deployment"]["docker-mirror-dockerhub"]["spec"]["template"]["metadata"]["annotations"][annotation])


def test_the_registry_pods_have_the_memory_limits_of_the_hosts_containers(tmp_path, capsys):
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_REGISTRY_MEMORY_MB=300, DOCKER_MIRROR_GC_MEMORY_MB=200)
    assert run(config, tmp_path / "out") == 0, capsys.readouterr().err
    kinds = by_kind(tmp_path / "out")
    registry = container(kinds["Deployment"]["docker-mirror-dockerhub"])
    assert registry["resources"]["limits"]["memory"] == "300Mi"
    collect = [job for name, job in kinds["CronJob"].items() if "gc" in name or "collect" in name]
    assert collect, sorted(kinds["CronJob"])
    spec = collect[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"]["memory"] == "200Mi"


def test_secrets_are_only_in_the_secret_file(tmp_path, htpasswd_file, capsys):
    config = write_config(tmp_path / ".config", **S3, **CREDENTIALS, DOCKER_MIRROR_HTPASSWD=True,
                          DOCKER_MIRROR_HTPASSWD_PATH=str(htpasswd_file))
    out = tmp_path / "k8s"
    assert run(config, out) == 0
    printed = capsys.readouterr()
    kinds = by_kind(out)
    values = secret_values(kinds)
    secrets = [S3["DOCKER_MIRROR_S3_SECRET_KEY"], S3["DOCKER_MIRROR_S3_ACCESS_KEY_ID"], UPSTREAM_PASSWORD,
               CUSTOM_URL_PASSWORD, values["http-secret"], htpasswd_file.read_text().split(":", 1)[1].strip()]
    # each is in the Secret, plainly decodable
    joined = "\n".join(values.values())
    for secret in secrets:
        assert secret in joined
    # the refresh's own password too (in its auth file, base64 as skopeo reads it)
    warm_auth = json.loads(values["warm-auth.json"])["auths"]
    secrets.append(base64.b64decode(next(iter(warm_auth.values()))["auth"]).decode().split(":", 1)[1])
    # and nowhere else: not in a ConfigMap, another file, stdout or stderr (plain or base64)
    for path in out.iterdir():
        text = path.read_text()
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.name == k8s.SECRET_FILE:
            assert mode == 0o600
            continue
        assert mode == 0o644, path
        for secret in secrets:
            assert secret not in text, (path.name, secret)
            assert base64.b64encode(secret.encode()).decode() not in text, (path.name, secret)
    for configmap in kinds["ConfigMap"].values():
        for value in configmap["data"].values():
            for secret in secrets:
                assert secret not in value
    for secret in secrets:
        assert secret not in printed.out and secret not in printed.err
    assert f"wrote {out / k8s.SECRET_FILE}" in printed.out and "kubectl apply -f" in printed.out


def _set(doc, path, value):
    for key in path[:-1]:
        doc = doc.setdefault(key, {})
    doc[path[-1]] = value


@pytest.mark.parametrize("backend", [S3, AZURE, {}])
def test_the_configmap_is_the_hosts_config_with_the_secrets_from_the_environment(tmp_path, backend, capsys):
    config = write_config(tmp_path / ".config", **backend, **CREDENTIALS)
    loaded = settings_module.load(config)
    out = tmp_path / "k8s"
    assert run(config, out) == 0
    kinds = by_kind(out)
    values = secret_values(kinds)
    for upstream in loaded.upstreams:
        name = k8s.names(loaded)[upstream.key]
        text = config_of(kinds, name)
        host = render.registry_config(loaded, upstream, major=2, mode=PULL_THROUGH,
                                      http_secret=values["http-secret"])
        assert text.splitlines()[0] == host.splitlines()[0]   # the same template's header
        cluster = yaml.safe_load(text)
        assert cluster["http"]["addr"] == f"0.0.0.0:{upstream.port}"
        cluster["http"]["addr"] = upstream.endpoint.listen
        # distribution's rule: REGISTRY_<PATH>, the keys upper-cased and joined by "_"
        for env in container(kinds["Deployment"][name])["env"]:
            path = env["name"].removeprefix("REGISTRY_").lower().split("_")
            _set(cluster, path, values[env["valueFrom"]["secretKeyRef"]["key"]])
        assert cluster == yaml.safe_load(host), upstream.key


def test_the_refresh_user_is_in_the_htpasswd_the_registries_read(tmp_path, htpasswd_file, capsys):
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_HTPASSWD=True,
                          DOCKER_MIRROR_HTPASSWD_PATH=str(htpasswd_file))
    out = tmp_path / "k8s"
    assert run(config, out) == 0
    kinds = by_kind(out)
    values = secret_values(kinds)
    auths = json.loads(values["warm-auth.json"])["auths"]
    assert list(auths) == ["docker-mirror-dockerhub.docker-mirror.svc.cluster.local:5000"]
    user, _, password = base64.b64decode(auths[next(iter(auths))]["auth"]).decode().partition(":")
    entries = dict(line.split(":", 1) for line in values["htpasswd"].splitlines())
    assert entries["alice"] == htpasswd_file.read_text().split(":", 1)[1].strip()   # the user's file, kept
    assert bcrypt_matches(password, entries[user]) and not bcrypt_matches(password + "x", entries[user])
    job = kinds["CronJob"]["docker-mirror-refresh"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {"name": "REGISTRY_AUTH_FILE", "value": "/auth/auth.json"} in job["containers"][0]["env"]
    deployment = kinds["Deployment"]["docker-mirror-dockerhub"]
    assert "tcpSocket" in container(deployment)["readinessProbe"]   # /v2/ answers 401 to a probe


def test_rendering_again_changes_nothing_and_removes_what_went(tmp_path, capsys):
    out = tmp_path / "k8s"
    out.mkdir()
    (out / "99-mine.yaml").write_text("kind: Mine\n")
    first = write_config(tmp_path / "first.config", **CREDENTIALS)
    assert run(first, out) == 0
    texts = {p.name: p.read_text() for p in out.iterdir()}
    assert run(first, out) == 0
    assert {p.name: p.read_text() for p in out.iterdir()} == texts   # same http secret, same checksums
    second = write_config(tmp_path / "second.config")                # ghcr, custom switched off
    assert run(second, out) == 0
    printed = capsys.readouterr().out
    assert not (out / "20-ghcr.yaml").exists() and f"removed {out / '20-ghcr.yaml'}" in printed
    assert (out / "99-mine.yaml").read_text() == "kind: Mine\n"       # not ours: left alone
    assert secret_values(by_kind_of(out / k8s.SECRET_FILE))["http-secret"] == \
        secret_values(by_kind_of_text(texts[k8s.SECRET_FILE]))["http-secret"]


def test_make_target_writes_beside_the_config(tmp_path):
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_PORT=5077)
    result = subprocess.run(["make", "-s", "docker-mirror-k8s", f"EXTRA_VARS={tmp_path / 'extra_vars.yaml'}",
                             "K8S_ARGS=--namespace via-make"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "KCONFIG_CONFIG": str(config)}, timeout=120)
    assert result.returncode == 0, result.stderr
    kinds = by_kind(tmp_path / "k8s")
    (service_port,) = kinds["Service"]["docker-mirror-dockerhub"]["spec"]["ports"]
    assert service_port["port"] == 5077 and kinds["Namespace"].keys() == {"via-make"}
    assert f"kubectl apply -f {tmp_path / 'k8s'}" in result.stdout


def test_the_storage_ca_bundle_is_mounted_where_a_hosts_container_has_it(tmp_path, capsys):
    from mirror.engine import containers
    from support.azurite import throwaway_ca_and_cert
    ca = throwaway_ca_and_cert(tmp_path / "tls", "127.0.0.1")[0]
    config = write_config(tmp_path / ".config", **S3, DOCKER_MIRROR_STORAGE_CA_BUNDLE=str(ca))
    out = tmp_path / "k8s"
    assert run(config, out) == 0
    for docs in documents(out).values():
        for doc in docs:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    kinds = by_kind(out)
    assert kinds["ConfigMap"]["docker-mirror-dockerhub-config"]["data"]["storage-ca.crt"] == ca.read_text()
    mounts = container(kinds["Deployment"]["docker-mirror-dockerhub"])["volumeMounts"]
    assert {"name": "config", "mountPath": containers.CONTAINER_STORAGE_CA, "subPath": "storage-ca.crt",
            "readOnly": True} in mounts
    assert k8s.CONTAINER_STORAGE_CA == containers.CONTAINER_STORAGE_CA


def test_a_cluster_runs_an_image_it_can_pull_not_the_engine_built_here(tmp_path, capsys):
    # The built engine's image is local to this host: the manifests say so and run registry:2,
    # or the image given with --registry-image (one pushed where the cluster pulls from).
    config = write_config(tmp_path / ".config")
    assert settings_module.load(config).registry_built
    assert run(config, tmp_path / "default") == 0
    err = capsys.readouterr().err
    assert "warning: the registry engine built here (docker-mirror/registry:2.8.2-dm." in err
    assert "--registry-image" in err
    deployment = by_kind(tmp_path / "default")["Deployment"]["docker-mirror-dockerhub"]
    assert container(deployment)["image"] == "docker.io/library/registry:2"

    ours = "registry.example.com/ops/docker-mirror-registry:2.8.2-dm.0123456789ab"
    assert run(config, tmp_path / "given", "--registry-image", ours) == 0
    assert "warning" not in capsys.readouterr().err
    deployment = by_kind(tmp_path / "given")["Deployment"]["docker-mirror-dockerhub"]
    assert container(deployment)["image"] == ours
    # An upstream image chosen in .config is what the cluster runs, with no warning.
    config = write_config(tmp_path / "up.config", olddefconfig=True, DOCKER_MIRROR_REGISTRY_BUILT=False,
                          DOCKER_MIRROR_REGISTRY_IMAGE="registry:3")
    assert run(config, tmp_path / "upstream") == 0
    assert "warning" not in capsys.readouterr().err
    deployment = by_kind(tmp_path / "upstream")["Deployment"]["docker-mirror-dockerhub"]
    assert container(deployment)["image"] == "docker.io/library/registry:3"
