"""mirror.net.s3.Bucket against a real SeaweedFS S3 gateway: what the warm engine relies on.

The gateway checks every request's SigV4 signature (support/seaweed.py), so a
size read here is a request botocore signed and the store accepted. Also: a
wrong key, a dead store and an untrusted certificate are WarmErrors that say
what to fix; a dropped connection is retried; nothing comes from the user's
~/.aws or AWS_* environment.
"""

from __future__ import annotations

import dataclasses
import socket
import threading

import botocore.exceptions
import botocore.session
import pytest

from mirror.model.settings import Storage
from mirror.errors import StoreError, WarmError
from mirror.net import s3
from support.azurite import throwaway_ca_and_cert
from support.seaweed import SeaweedS3
from support.upstream import free_port

BUCKET = "warm-bucket"
ACCESS_KEY, SECRET_KEY = "bucketreader", "bucket-secret-never-shown"
DIGEST = "sha256:" + "ab" * 32


def storage_for(endpoint: str, secret_key: str = SECRET_KEY, ca_bundle: str = "") -> Storage:
    return Storage("s3", "", s3_endpoint=endpoint, s3_region="us-east-1", s3_bucket=BUCKET,
                   s3_access_key=ACCESS_KEY, s3_secret_key=secret_key, s3_path_style=True,
                   s3_secure=endpoint.startswith("https:"), s3_root="/dm", ca_bundle=ca_bundle)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("seaweed")
    ca, cert, key = throwaway_ca_and_cert(root / "tls", "127.0.0.1")
    https_port = free_port()
    with SeaweedS3(root / "weed", ACCESS_KEY, SECRET_KEY,
                   extra_args=(f"-s3.port.https={https_port}", f"-s3.cert.file={cert}",
                               f"-s3.key.file={key}")) as weed:
        weed.make_bucket(BUCKET)
        weed.https, weed.ca = f"https://127.0.0.1:{https_port}", str(ca)
        # what the registry would have written for one cached blob of library/alpine
        bucket = s3.Bucket(storage_for(weed.endpoint), "dockerhub")
        writer = s3.client(storage_for(weed.endpoint))
        writer.put_object(Bucket=BUCKET, Key=bucket.data_key(DIGEST), Body=b"x" * 1234)
        writer.put_object(Bucket=BUCKET, Key=bucket.link_key("library/alpine", DIGEST), Body=DIGEST.encode())
        yield weed


@pytest.mark.parametrize("endpoint,path_style,url", [
    ("https://s3.eu-central-1.amazonaws.com", True, "https://s3.eu-central-1.amazonaws.com/warm-bucket/dm/k"),
    ("https://s3.eu-central-1.amazonaws.com", False, "https://warm-bucket.s3.eu-central-1.amazonaws.com/dm/k"),
    ("https://minio.example:9000", False, "https://warm-bucket.minio.example:9000/dm/k"),
    ("http://127.0.0.1:9000", False, "http://127.0.0.1:9000/warm-bucket/dm/k"),   # no host name to prefix
])
def test_the_bucket_is_addressed_as_DOCKER_MIRROR_S3_PATH_STYLE_says(endpoint, path_style, url):
    storage = dataclasses.replace(storage_for(endpoint), s3_path_style=path_style)
    # a presigned URL is built as a request's is, without sending anything
    assert s3.client(storage).generate_presigned_url(
        "head_object", Params={"Bucket": BUCKET, "Key": "dm/k"}).split("?")[0] == url


def test_signed_heads_read_sizes_and_links(store):
    bucket = s3.Bucket(storage_for(store.endpoint), "dockerhub")
    assert bucket.data_key(DIGEST) == f"dm/dockerhub/docker/registry/v2/blobs/sha256/ab/{'ab' * 32}/data"
    assert bucket.size(bucket.data_key(DIGEST)) == 1234
    assert bucket.size(bucket.data_key("sha256:" + "cd" * 32)) is None
    assert bucket.linked("library/alpine", DIGEST)
    assert not bucket.linked("library/busybox", DIGEST)       # stored, but not linked there
    assert not s3.Bucket(storage_for(store.endpoint), "ghcr").linked("library/alpine", DIGEST)


def test_a_wrong_secret_key_is_a_warm_error_naming_the_keys(store):
    bucket = s3.Bucket(storage_for(store.endpoint, secret_key="not-the-secret"), "dockerhub")
    with pytest.raises(WarmError) as err:
        bucket.linked("library/alpine", DIGEST)
    text = str(err.value)
    assert f"s3 bucket {BUCKET} at {store.endpoint}: HEAD dm/dockerhub/" in text
    assert "answered 403" in text and "DOCKER_MIRROR_S3_SECRET_KEY" in text
    assert "not-the-secret" not in text and SECRET_KEY not in text


def test_a_missing_key_is_none_and_a_missing_bucket_a_store_error_naming_it(store):
    """check-mirror IMAGE_EXISTS and the lifecycle read through read(): a misspelt
    DOCKER_MIRROR_S3_BUCKET must say so (exit 3), not read as an empty cache forever."""
    bucket = s3.Bucket(storage_for(store.endpoint), "dockerhub")
    assert bucket.read(bucket.data_key(DIGEST), 3) == b"xxx"
    assert bucket.read(bucket.data_key("sha256:" + "cd" * 32), 3) is None
    missing = s3.Bucket(dataclasses.replace(storage_for(store.endpoint), s3_bucket="no-such-bucket"),
                        "dockerhub")
    for reading in (lambda: missing.read(missing.data_key(DIGEST), 3), lambda: missing.list(missing.prefix)):
        with pytest.raises(StoreError) as err:
            reading()
        text = str(err.value)
        assert text.startswith(f"s3 bucket no-such-bucket at {store.endpoint}: "), text
        assert "the bucket does not exist (NoSuchBucket): check DOCKER_MIRROR_S3_BUCKET" in text
        assert SECRET_KEY not in text


def test_a_store_that_does_not_answer_is_a_warm_error_after_the_retries():
    endpoint = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(WarmError) as err:
        s3.Bucket(storage_for(endpoint), "dockerhub", timeout=2).size("dm/k")
    assert str(err.value).startswith(f"s3 bucket {BUCKET} at {endpoint}: EndpointConnectionError: ")
    assert "\n" not in str(err.value)


class DropFirst:
    """A TCP relay to `target` on loopback that drops its first connection unanswered,
    as a restarting store or a load balancer may."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.accepted = target, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted == 1:
                client.recv(65536)   # the request arrives; no answer comes
                client.close()
                continue
            server = socket.create_connection(self.target, timeout=10)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def test_a_dropped_connection_is_retried(store):
    relay = DropFirst(("127.0.0.1", store.s3_port))
    try:
        bucket = s3.Bucket(storage_for(relay.url), "dockerhub")
        assert bucket.size(bucket.data_key(DIGEST)) == 1234
        assert relay.accepted == 2
    finally:
        relay.close()


def test_the_store_is_trusted_through_its_ca_bundle_only(store):
    untrusted = s3.Bucket(storage_for(store.https), "dockerhub")
    with pytest.raises(WarmError) as err:
        untrusted.size(untrusted.data_key(DIGEST))
    assert "certificate verify failed" in str(err.value)
    assert "DOCKER_MIRROR_STORAGE_CA_BUNDLE" in str(err.value)
    trusted = s3.Bucket(storage_for(store.https, ca_bundle=store.ca), "dockerhub")
    assert trusted.linked("library/alpine", DIGEST)
    assert trusted.size(trusted.data_key(DIGEST)) == 1234


def test_nothing_comes_from_the_users_aws_files_or_environment(store, tmp_path, monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"
    aws = tmp_path / "home" / ".aws"
    aws.mkdir(parents=True)
    for name in ("config", "credentials"):
        (aws / name).write_text(f"[default]\nregion = eu-west-9\nendpoint_url = {dead}\n"
                                "aws_access_key_id = WRONG\naws_secret_access_key = WRONG\n"
                                "max_attempts = 1\ns3 =\n    addressing_style = virtual\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, value in {"AWS_PROFILE": "no-such-profile", "AWS_DEFAULT_REGION": "eu-west-9",
                        "AWS_ACCESS_KEY_ID": "WRONG", "AWS_SECRET_ACCESS_KEY": "WRONG",
                        "AWS_ENDPOINT_URL": dead, "AWS_ENDPOINT_URL_S3": dead,
                        "AWS_CA_BUNDLE": str(tmp_path / "missing.pem"),
                        "REQUESTS_CA_BUNDLE": str(tmp_path / "missing.pem"),
                        "AWS_USE_FIPS_ENDPOINT": "true", "AWS_USE_DUALSTACK_ENDPOINT": "true",
                        "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead,
                        "https_proxy": dead}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    # botocore as it comes would obey that environment (and fail on the profile)
    with pytest.raises(botocore.exceptions.ProfileNotFound):
        botocore.session.Session().create_client("s3", endpoint_url=store.endpoint)
    s3.client.cache_clear()
    try:
        bucket = s3.Bucket(storage_for(store.endpoint), "dockerhub")
        assert bucket.linked("library/alpine", DIGEST)
        trusted = s3.Bucket(storage_for(store.https, ca_bundle=store.ca), "dockerhub")
        assert trusted.size(trusted.data_key(DIGEST)) == 1234
    finally:
        s3.client.cache_clear()
