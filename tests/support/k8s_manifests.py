"""Shared by the Kubernetes tests (tests/test_k8s*.py): .config values, rendering, reading back."""

import base64

import pytest
import yaml

from mirror import cli
from mirror.host.credential import _bcrypt

KUBERNETES = "1.30.0"
# The newest schemas kubernetes-validate ships too: nothing rendered is removed or renamed there.
NEWEST = "1.37.0"

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


def by_kind_of(path):
    return by_kind_of_text(path.read_text())


def by_kind_of_text(text):
    found = {}
    for doc in yaml.safe_load_all(text):
        if doc:
            found.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    return found


def kubelet_volume(hosts, items, data, mode=None):
    """The layout the kubelet gives a ConfigMap or Secret volume with items: the files in a
    timestamped directory, behind a ..data link and one link per top-level entry."""
    timestamped = hosts / "..2026_11_24_06_00_00.000000001"
    for item in items:
        file = timestamped / item["path"]
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(data[item["key"]])
        if mode is not None:
            file.chmod(mode)
    (hosts / "..data").symlink_to(timestamped.name)
    for top in {item["path"].split("/")[0] for item in items}:
        (hosts / top).symlink_to(f"..data/{top}")
