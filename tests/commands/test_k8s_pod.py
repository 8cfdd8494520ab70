"""The rendered Kubernetes manifests, run as a kubelet would run them, on the real engine.

No cluster can run here, so the test plays the kubelet for one pod: the
Deployment's container (its image, command, environment from the Secret,
files from the ConfigMap and the Secret at their mount paths) runs on the
offline-built registry image, on SeaweedFS; then the refresh CronJob's own
script runs with this host's skopeo and the Secret's auth file; and the
collection CronJob's container sweeps the claim the serving pod uses. Only the
addresses change: the Service's cluster name becomes the test's loopback
port (REGISTRY_HTTP_ADDR, one more of distribution's overrides, and the
references' host).

The DaemonSet's init container runs too, on an image of this host's sh, cp,
mkdir and chmod (busybox cannot be pulled here), with its ConfigMap volumes in
the kubelet's layout and a directory standing for each node's /etc at its
mount path: the script runs as written, no path in it replaced.
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager

import requests
import yaml

from mirror.client_table import DROP_IN
from mirror.engine import tool_images
from mirror.host.credential import _bcrypt
from mirror.net.registry_api import RegistryAPI
from mirror.model.manifests import blobs_of
from support.configs import image_list, run_mirror, write_config
from support.k8s_manifests import by_kind, kubelet_volume
from support.upstream import free_port, push_image

BUCKET = "k8s-cache"
ROOT = "/k8s-test"
ACCESS_KEY = "k8stest"
SECRET_KEY = "k8s-s3-secret-never-in-a-configmap"
# What the init container's command needs of busybox, from this host (the entrypoint is the command's).
NODE_SHELL = tool_images.Tool("node-shell", "dash coreutils", ("/bin/sh", "/bin/cp", "/bin/mkdir", "/bin/chmod"),
                              "unused", ())


@contextmanager
def kubelet(client, image, kinds, pod_spec, root, extra_env):
    """Run the pod's one container as a kubelet would: env from the Secret, volumes as files."""
    (spec,) = pod_spec["containers"]
    (secret,) = kinds["Secret"].values()
    values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    env = {e["name"]: values[e["valueFrom"]["secretKeyRef"]["key"]] if "valueFrom" in e else e["value"]
           for e in spec.get("env", [])}
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    binds = {}
    name = f"dmtest-k8s-{uuid.uuid4().hex[:8]}"
    (root / name).mkdir()
    for number, mount in enumerate(spec["volumeMounts"]):
        volume = volumes[mount["name"]]
        source = root / name / f"volume-{number}"
        if "configMap" in volume or "secret" in volume:
            data = (kinds["ConfigMap"][volume["configMap"]["name"]]["data"] if "configMap" in volume
                    else {item["path"]: values[item["key"]] for item in volume["secret"]["items"]})
            source.write_text(data[mount["subPath"]])
        elif "persistentVolumeClaim" in volume:   # one directory per claim, shared by the pods using it
            source = root / f"claim-{volume['persistentVolumeClaim']['claimName']}"
            source.mkdir(exist_ok=True)
        else:   # emptyDir: the pod's own
            source.mkdir()
        binds[str(source)] = {"bind": mount["mountPath"], "mode": "ro" if mount.get("readOnly") else "rw"}
    container = client.containers.run(image, entrypoint=spec["command"], environment={**env, **extra_env},
                                      volumes=binds, network_mode="host", detach=True, name=name)
    try:
        yield container
    finally:
        container.remove(force=True)


def wait_for_answer(url, container, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{url}/v2/", timeout=2).status_code in (200, 401):
                return
        except requests.RequestException:
            pass
        container.reload()
        assert container.status != "exited", container.logs().decode(errors="replace")[-3000:]
        assert time.monotonic() < deadline, container.logs().decode(errors="replace")[-3000:]
        time.sleep(0.2)


def stored_in_bucket(store, digest, timeout=30.0):
    hex_ = digest.split(":", 1)[1]
    key = f"{ROOT}/dockerhub/docker/registry/v2/blobs/sha256/{hex_[:2]}/{hex_}/data"
    deadline = time.monotonic() + timeout
    while (data := store.read(BUCKET, key)) is None:
        assert time.monotonic() < deadline, f"{key} never reached the bucket: {store.list(BUCKET)}"
        time.sleep(0.2)
    return data


def test_the_pod_serves_from_the_bucket_and_the_refresh_job_warms_it(tmp_path, docker_client, registry_image,
                                                                     seaweed, hub):
    assert shutil.which("skopeo"), "skopeo is installed by scripts/install-deps.sh"
    digest = push_image(hub.url, "library/alpine", "3.20")
    users = tmp_path / "htpasswd"
    users.write_text(f"alice:{_bcrypt('alice-password')}\n")
    port = free_port()
    config = write_config(
        tmp_path / ".config", DOCKER_MIRROR_PORT=port, DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=hub.url,
        DOCKER_MIRROR_STORAGE_FILESYSTEM=False, DOCKER_MIRROR_STORAGE_S3=True,
        DOCKER_MIRROR_S3_ENDPOINT=seaweed.endpoint, DOCKER_MIRROR_S3_BUCKET=BUCKET,
        DOCKER_MIRROR_S3_ACCESS_KEY_ID=ACCESS_KEY, DOCKER_MIRROR_S3_SECRET_KEY=SECRET_KEY,
        DOCKER_MIRROR_S3_ROOT_DIRECTORY=ROOT,
        DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(users),
        DOCKER_MIRROR_IMAGE_MINIO=False, DOCKER_MIRROR_IMAGE_MILVUS=False, DOCKER_MIRROR_IMAGE_REGISTRY=False,
        DOCKER_MIRROR_IMAGES_EXTRA_LIST=image_list(tmp_path, "alpine:3.20"))
    out = tmp_path / "k8s"
    printed = run_mirror("k8s", "--out", str(out), config=config)
    assert SECRET_KEY not in printed.stdout + printed.stderr
    kinds = by_kind(out)
    # The ConfigMap's config has no key: the bucket can only be reached with the Secret's.
    config_yml = yaml.safe_load(kinds["ConfigMap"]["docker-mirror-dockerhub-config"]["data"]["config.yml"])
    assert config_yml["storage"]["s3"]["secretkey"] == config_yml["storage"]["s3"]["accesskey"] == ""
    assert config_yml["http"]["secret"] == ""

    url = f"http://127.0.0.1:{port}"
    pod = kinds["Deployment"]["docker-mirror-dockerhub"]["spec"]["template"]["spec"]
    with kubelet(docker_client, registry_image.ref, kinds, pod, tmp_path,
                 {"REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"}) as container:
        wait_for_answer(url, container)
        assert requests.get(f"{url}/v2/", timeout=5).status_code == 401   # the Secret's htpasswd is read

        # The refresh CronJob's own script and arguments, its auth file from the Secret.
        job = kinds["CronJob"]["docker-mirror-refresh"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (warm,) = job["containers"]
        service = f"docker-mirror-dockerhub.docker-mirror.svc.cluster.local:{port}"
        (secret,) = kinds["Secret"].values()
        auth_file = tmp_path / "auth.json"
        auth_file.write_text(base64.b64decode(secret["data"]["warm-auth.json"]).decode()
                             .replace(service, f"127.0.0.1:{port}"))
        auth_file.chmod(0o600)
        env = {e["name"]: e["value"] for e in warm["env"]}
        assert env["REGISTRY_AUTH_FILE"] == "/auth/auth.json"
        env["REGISTRY_AUTH_FILE"] = str(auth_file)
        script, refs = warm["command"][2], warm["command"][4:]
        assert refs == [f"{service}/library/alpine:3.20"]
        result = subprocess.run(["sh", "-c", script, "warm", *(r.replace(service, f"127.0.0.1:{port}") for r in refs)],
                                env={"PATH": os.environ["PATH"], "TMPDIR": str(tmp_path), **env},
                                capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"warmed 127.0.0.1:{port}/library/alpine:3.20" in result.stdout

        # Every blob of the image is in the bucket now, and the mirror serves it.
        user, _, password = base64.b64decode(
            next(iter(json.loads(auth_file.read_text())["auths"].values()))["auth"]).decode().partition(":")
        api = RegistryAPI(url, username=user, password=password)
        manifest = api.get_manifest("library/alpine", "3.20")
        assert manifest.digest == digest
        for descriptor in blobs_of(json.loads(manifest.body)):
            stored = stored_in_bucket(seaweed, descriptor["digest"])
            assert "sha256:" + hashlib.sha256(stored).hexdigest() == descriptor["digest"]
        assert SECRET_KEY not in container.logs().decode(errors="replace")


def test_the_collection_job_sweeps_the_claim_beside_the_serving_registry(tmp_path, docker_client, registry_image,
                                                                         hub):
    digest = push_image(hub.url, "library/alpine", "3.20")
    port = free_port()
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_PORT=port,
                          DOCKER_MIRROR_DOCKERHUB_REMOTE_URL=hub.url)
    out = tmp_path / "k8s"
    run_mirror("k8s", "--out", str(out), config=config)
    kinds = by_kind(out)
    url = f"http://127.0.0.1:{port}"
    pod = kinds["Deployment"]["docker-mirror-dockerhub"]["spec"]["template"]["spec"]
    gc = kinds["CronJob"]["docker-mirror-dockerhub-gc"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    claim = tmp_path / "claim-docker-mirror-dockerhub-storage"
    blobs_dir = claim / "docker/registry/v2/blobs/sha256"
    with kubelet(docker_client, registry_image.ref, kinds, pod, tmp_path,
                 {"REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}"}) as registry:
        wait_for_answer(url, registry)
        api = RegistryAPI(url)
        manifest = api.get_manifest("library/alpine", "3.20")
        blobs = {}
        for descriptor in blobs_of(json.loads(manifest.body)):
            chunks = []
            api.fetch_blob("library/alpine", descriptor["digest"], sink=chunks.append)
            blobs[descriptor["digest"]] = b"".join(chunks)
        kept = [blobs_dir / d[7:9] / d[7:] / "data" for d in blobs]
        deadline = time.monotonic() + 30
        while not all(path.exists() for path in kept):   # the proxy stores blobs in the background
            assert time.monotonic() < deadline, sorted(str(p) for p in blobs_dir.rglob("data"))
            time.sleep(0.2)
        # A blob no manifest references (an upload cut short): what the collection is for.
        orphan = b"no manifest references this"
        hex_ = hashlib.sha256(orphan).hexdigest()
        (blobs_dir / hex_[:2] / hex_).mkdir(parents=True)
        (blobs_dir / hex_[:2] / hex_ / "data").write_bytes(orphan)

        with kubelet(docker_client, registry_image.ref, kinds, gc, tmp_path, {}) as job:
            result = job.wait(timeout=120)
            logs = job.logs().decode(errors="replace")
        assert result["StatusCode"] == 0, logs
        assert not (blobs_dir / hex_[:2] / hex_ / "data").exists(), logs
        assert all(path.exists() for path in kept), logs

        hub.stop()   # what the mirror serves now comes from the claim alone
        again = api.get_manifest("library/alpine", "3.20")
        assert again.digest == manifest.digest == digest
        for blob_digest, data in blobs.items():
            chunks = []
            api.fetch_blob("library/alpine", blob_digest, sink=chunks.append)
            assert b"".join(chunks) == data


def test_the_daemonsets_init_container_writes_each_runtimes_files_on_its_node(tmp_path, docker_client):
    """A containerd node gets hosts.toml and no CRI-O file; a CRI-O node the registries.conf
    drop-in and no /etc/containerd; a node with neither, nothing."""
    config = write_config(tmp_path / ".config", DOCKER_MIRROR_GHCR=True)
    out = tmp_path / "k8s"
    run_mirror("k8s", "--out", str(out), config=config)
    kinds = by_kind(out)
    pod = kinds["DaemonSet"]["docker-mirror-containerd-hosts"]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    image = tool_images.ensure(docker_client, NODE_SHELL)
    sources = {}
    for mount in init["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            sources[mount["name"]] = source = tmp_path / f"volume-{mount['name']}"
            kubelet_volume(source, volume["configMap"]["items"], kinds["ConfigMap"][volume["configMap"]["name"]]["data"])
        else:
            assert volume["hostPath"] == {"path": "/etc", "type": "Directory"}

    def node(name, *dirs):
        etc = tmp_path / name / "etc"
        etc.mkdir(parents=True)
        for directory in dirs:
            (etc / directory).mkdir()
        binds = {str(sources.get(m["name"], etc)): {"bind": m["mountPath"], "mode": "ro" if m.get("readOnly") else "rw"}
                 for m in init["volumeMounts"]}
        for _ in range(2):   # the pod's next start: the same files
            container = docker_client.containers.run(image.ref, entrypoint=init["command"], volumes=binds,
                                                     network_mode="none", detach=True,
                                                     name=f"dmtest-k8s-init-{uuid.uuid4().hex[:8]}")
            try:
                result = container.wait(timeout=60)
                assert result["StatusCode"] == 0, container.logs().decode(errors="replace")
            finally:
                container.remove(force=True)
        return sorted(p.relative_to(etc).as_posix() for p in etc.rglob("*") if p.is_file())

    hosts = kinds["ConfigMap"]["docker-mirror-containerd-hosts"]["data"]
    drop_in = kinds["ConfigMap"]["docker-mirror-registries-conf"]["data"]["registries.conf"]
    assert node("containerd-node", "containerd") == ["containerd/certs.d/docker.io/hosts.toml",
                                                     "containerd/certs.d/ghcr.io/hosts.toml"]
    for registry, key in (("docker.io", "dockerhub.toml"), ("ghcr.io", "ghcr.toml")):
        copied = tmp_path / "containerd-node/etc/containerd/certs.d" / registry / "hosts.toml"
        assert copied.read_text() == hosts[key] and not copied.is_symlink()
    assert node("crio-node", "containers", "crio") == [f"containers/registries.conf.d/{DROP_IN}"]
    assert (tmp_path / "crio-node/etc/containers/registries.conf.d" / DROP_IN).read_text() == drop_in
    assert not (tmp_path / "crio-node/etc/containerd").exists()
    assert node("bare-node") == [] and [p.name for p in (tmp_path / "bare-node/etc").iterdir()] == []
