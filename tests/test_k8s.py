"""make docker-mirror-k8s: the cluster's manifests from .config, checked against
the Kubernetes schemas (kubernetes-validate, offline) and against what the
host renders from the same templates. No cluster runs here: these tests read
the manifests, they do not apply them."""

import base64
import json
import os
import stat
import subprocess
import tomllib

import kubernetes_validate
import pytest
import yaml

from mirror import cli, k8s, render
from mirror.config import settings as settings_module
from mirror.host.credential import _bcrypt
from mirror.host.htpasswd import bcrypt_matches
from mirror.config.kconfig import ROOT
from mirror.model.client_config import hosts_toml
from mirror.model.modes import PULL_THROUGH
from support.configs import write_config

KUBERNETES = "1.30.0"

S3 = {"DOCKER_MIRROR_STORAGE_FILESYSTEM": False, "DOCKER_MIRROR_STORAGE_S3": True,
      "DOCKER_MIRROR_S3_ENDPOINT": "http://127.0.0.1:8333", "DOCKER_MIRROR_S3_BUCKET": "mirror-cache",
      "DOCKER_MIRROR_S3_ACCESS_KEY_ID": "AKIDK8SACCESSVALUE",
      "DOCKER_MIRROR_S3_SECRET_KEY": "s3-Secret-Key-k8s-0123456789"}
AZURE = {"DOCKER_MIRROR_STORAGE_FILESYSTEM": False, "DOCKER_MIRROR_STORAGE_AZURE": True,
         "DOCKER_MIRROR_AZURE_ACCOUNT_NAME": "mirroraccount",
         "DOCKER_MIRROR_AZURE_ACCOUNT_KEY": "YXp1cmUta2V5LWZvci1rOHMtdGVzdHM="}
UPSTREAM_PASSWORD = "ghcr-Proxy-Password-42"
CUSTOM_URL_PASSWORD = "url-embedded-pw-77"
CREDENTIALS = {"DOCKER_MIRROR_GHCR": True, "DOCKER_MIRROR_GHCR_USERNAME": "robot",
               "DOCKER_MIRROR_GHCR_PASSWORD": UPSTREAM_PASSWORD,
               "DOCKER_MIRROR_CUSTOM": True, "DOCKER_MIRROR_CUSTOM_REGISTRY": "registry.example.com:5443",
               "DOCKER_MIRROR_CUSTOM_REMOTE_URL": f"https://bot:{CUSTOM_URL_PASSWORD}@registry.example.com:5443"}


@pytest.fixture(scope="module")
def htpasswd_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "htpasswd"
    path.write_text(f"alice:{_bcrypt('alice-password')}\n")
    return path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    # Contents are carried, not parsed, on the way into the Secret.
    root = tmp_path_factory.mktemp("tls")
    (root / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----\n")
    (root / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nMIIkey-k8s-test\n-----END PRIVATE KEY-----\n")
    return root


def run(config, out, *args):
    """`python3 -m mirror k8s` in this process: (exit code, stdout, stderr) via capsys by the caller."""
    return cli.main(["--config", str(config), "k8s", "--out", str(out), *args])


def documents(out):
    """{file name: [documents]} of everything written."""
    return {path.name: [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
            for path in sorted(out.iterdir())}


def by_kind(out):
    found = {}
    for docs in documents(out).values():
        for doc in docs:
            found.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    return found


def secret_values(kinds):
    (secret,) = kinds["Secret"].values()
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def config_of(kinds, name):
    return kinds["ConfigMap"][f"{name}-config"]["data"]["config.yml"]


def container(deployment):
    (found,) = deployment["spec"]["template"]["spec"]["containers"]
    return found


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
            count += 1
    kinds = by_kind(out)
    names = k8s.names(loaded)
    assert set(kinds["Deployment"]) == set(kinds["Service"]) == set(names.values())
    assert {f"{n}-config" for n in names.values()} < set(kinds["ConfigMap"])
    assert len(kinds["Secret"]) == 1 and len(kinds["DaemonSet"]) == 1
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


def test_each_node_gets_the_hosts_toml_the_clients_command_writes(tmp_path, capsys):
    config = write_config(tmp_path / ".config", **CREDENTIALS)
    loaded = settings_module.load(config)
    out = tmp_path / "k8s"
    assert run(config, out, "--namespace", "mirrors") == 0
    kinds = by_kind(out)
    data = kinds["ConfigMap"]["docker-mirror-containerd-hosts"]["data"]
    daemonset = kinds["DaemonSet"]["docker-mirror-containerd-hosts"]["spec"]["template"]["spec"]
    (volume,) = [v for v in daemonset["volumes"] if "configMap" in v]
    items = {item["key"]: item["path"] for item in volume["configMap"]["items"]}
    (host_path,) = [v["hostPath"]["path"] for v in daemonset["volumes"] if "hostPath" in v]
    assert host_path == "/etc/containerd/certs.d"
    for upstream in loaded.upstreams:
        url = f"http://docker-mirror-{upstream.key}.mirrors.svc.cluster.local:{upstream.port}"
        assert data[f"{upstream.key}.toml"] == hosts_toml(upstream.registry, url)
        assert items[f"{upstream.key}.toml"] == f"{upstream.registry}/hosts.toml"
    assert items["custom.toml"] == "registry.example.com:5443/hosts.toml"


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


def by_kind_of(path):
    return by_kind_of_text(path.read_text())


def by_kind_of_text(text):
    found = {}
    for doc in yaml.safe_load_all(text):
        if doc:
            found.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    return found


@pytest.mark.parametrize("overrides, args, words", [
    ({}, ("--namespace", "Mirrors"), ["--namespace 'Mirrors'", "lower-case"]),
    ({}, ("--warm-image", "Not An Image"), ["--warm-image", "invalid image reference"]),
    ({"DOCKER_MIRROR_REFRESH_ON_CALENDAR": "Mon..Fri 02:00"}, (),
     ["CONFIG_DOCKER_MIRROR_REFRESH_ON_CALENDAR='Mon..Fri 02:00'", ".config:", "with Kubernetes"]),
    ({"DOCKER_MIRROR_CONTAINER_PREFIX": "Docker_Mirror"}, (),
     ["CONFIG_DOCKER_MIRROR_CONTAINER_PREFIX='Docker_Mirror'", ".config:", "Kubernetes name"]),
    ({"DOCKER_MIRROR_CONTAINER_PREFIX": "m" * 40}, (),
     ["CONFIG_DOCKER_MIRROR_CONTAINER_PREFIX=", "-dockerhub-storage", "at most 52"]),
    ({"ENABLE_DOCKER_MIRROR": False}, (), ["CONFIG_ENABLE_DOCKER_MIRROR is off"]),
])
def test_bad_input_is_named_without_a_traceback(tmp_path, capsys, overrides, args, words):
    config = write_config(tmp_path / ".config", **overrides)
    out = tmp_path / "k8s"
    assert run(config, out, *args) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("generate", [True, False])
def test_a_tls_file_that_cannot_be_read_is_named(tmp_path, capsys, generate):
    overrides = ({"DOCKER_MIRROR_TLS_GENERATE": True} if generate else
                 {"DOCKER_MIRROR_TLS_GIVEN": True, "DOCKER_MIRROR_TLS_CERTIFICATE": str(tmp_path / "none.crt"),
                  "DOCKER_MIRROR_TLS_KEY": str(tmp_path / "none.key")})
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_TLS=True, DOCKER_MIRROR_PATH=str(tmp_path / "m"),
                          **overrides)
    out = tmp_path / "k8s"
    assert run(config, out) == 2
    err = capsys.readouterr().err
    if generate:
        assert "CONFIG_DOCKER_MIRROR_TLS_GENERATE" in err and "run 'make docker-mirror' once" in err
    else:
        assert f"CONFIG_DOCKER_MIRROR_TLS_CERTIFICATE='{tmp_path / 'none.crt'}'" in err
    assert "No such file" in err and "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys, where):
    config = write_config(tmp_path / ".config")
    file = tmp_path / "taken"
    file.write_text("mine\n")
    out = file if where == "file" else file / "k8s"
    assert run(config, out) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out}:") and "not a directory" in err and "--out" in err
    assert file.read_text() == "mine\n"


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


def test_the_daemonsets_copy_puts_each_hosts_toml_where_containerd_reads_it(tmp_path, capsys):
    """The init container's command, run by this host's sh and cp on the layout the
    kubelet gives a ConfigMap volume with items (files behind ..data symbolic links)."""
    config = write_config(tmp_path / ".config", **CREDENTIALS)
    out = tmp_path / "k8s"
    assert run(config, out) == 0
    kinds = by_kind(out)
    data = kinds["ConfigMap"]["docker-mirror-containerd-hosts"]["data"]
    spec = kinds["DaemonSet"]["docker-mirror-containerd-hosts"]["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    (volume,) = [v for v in spec["volumes"] if "configMap" in v]
    hosts, certs_d = tmp_path / "volume", tmp_path / "node-certs.d"
    timestamped = hosts / "..2026_11_24_06_00_00.000000001"
    for item in volume["configMap"]["items"]:
        (timestamped / item["path"]).parent.mkdir(parents=True, exist_ok=True)
        (timestamped / item["path"]).write_text(data[item["key"]])
    (hosts / "..data").symlink_to(timestamped.name)
    for top in {item["path"].split("/")[0] for item in volume["configMap"]["items"]}:
        (hosts / top).symlink_to(f"..data/{top}")
    (certs_d / "quay.io").mkdir(parents=True)
    (certs_d / "quay.io" / "hosts.toml").write_text("# someone else's\n")   # not mirrored: left alone
    command = init["command"]
    assert command[:2] == ["sh", "-c"]
    script = command[2].replace(mounts["hosts"], str(hosts)).replace(mounts["certs-d"], str(certs_d))
    subprocess.run(["sh", "-c", script], check=True, timeout=30)
    subprocess.run(["sh", "-c", script], check=True, timeout=30)   # the pod's next start: same result
    for item in volume["configMap"]["items"]:
        copied = certs_d / item["path"]
        assert copied.is_file() and not copied.is_symlink() and not copied.parent.is_symlink()
        assert copied.read_text() == data[item["key"]]
    assert (certs_d / "quay.io" / "hosts.toml").read_text() == "# someone else's\n"
    assert not list(certs_d.glob("..*"))       # the kubelet's own entries stay behind
    assert sorted(p.relative_to(certs_d).as_posix() for p in certs_d.rglob("*") if p.is_file()) == sorted(
        [item["path"] for item in volume["configMap"]["items"]] + ["quay.io/hosts.toml"])


def test_behind_htpasswd_the_nodes_sign_in_and_their_hosts_toml_is_a_secret(tmp_path, htpasswd_file, capsys):
    config = write_config(tmp_path / ".config", **CREDENTIALS, DOCKER_MIRROR_HTPASSWD=True,
                          DOCKER_MIRROR_HTPASSWD_PATH=str(htpasswd_file),
                          DOCKER_MIRROR_CLIENT_USERNAME="alice", DOCKER_MIRROR_CLIENT_PASSWORD="alice-password")
    loaded = settings_module.load(config)
    out = tmp_path / "k8s"
    assert run(config, out) == 0
    printed = capsys.readouterr()
    for docs in documents(out).values():
        for doc in docs:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    kinds = by_kind(out)
    assert "docker-mirror-containerd-hosts" not in kinds["ConfigMap"]
    hosts = {key: base64.b64decode(value).decode()
             for key, value in kinds["Secret"]["docker-mirror-containerd-hosts"]["data"].items()}
    header = "Basic " + base64.b64encode(b"alice:alice-password").decode()
    for upstream in loaded.upstreams:
        url = f"http://docker-mirror-{upstream.key}.docker-mirror.svc.cluster.local:{upstream.port}"
        text = hosts[f"{upstream.key}.toml"]
        assert text == hosts_toml(upstream.registry, url, authorization=header)
        assert tomllib.loads(text)["host"][url]["header"]["Authorization"] == header
    (volume,) = [v for v in kinds["DaemonSet"]["docker-mirror-containerd-hosts"]["spec"]["template"]["spec"]["volumes"]
                 if v["name"] == "hosts"]
    assert volume["secret"]["secretName"] == "docker-mirror-containerd-hosts" and "configMap" not in volume
    for path in out.iterdir():
        if path.name != k8s.SECRET_FILE:
            assert "alice-password" not in path.read_text() and header not in path.read_text()
            assert base64.b64encode(header.encode()).decode() not in path.read_text()
    assert "alice-password" not in printed.out + printed.err
