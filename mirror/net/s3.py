"""The s3 backend's bucket as the warm engine reads it: HEAD requests through botocore.

distribution keeps a repository's blobs in the bucket under the same keys as
on a filesystem (<root>/<upstream>/docker/registry/v2/...): a blob is cached
for a repository when its data object exists and the repository links it.

botocore (the core of boto3) signs the requests (AWS SigV4) and retries
them. It is given every setting from .config (endpoint, region, keys,
addressing style, the store's CA) and reads nothing else: not the user's
~/.aws files, not AWS_* variables (an AWS_PROFILE naming no profile would
fail, an AWS_CA_BUNDLE would change what is trusted), not proxies from the
environment, the same store the registry containers are given. It is
imported when a bucket is first made (that and the first client take about
0.2 s): the commands that never read a bucket do not pay for it. The
secret key signs and is never logged.
"""

from __future__ import annotations

import functools
import os

from ..model.settings import Storage
from ..errors import StoreError, WarmError
from .object_store import ObjectStore, StoredObject

ATTEMPTS = 3  # botocore's "standard" retries: connection errors, throttling, 500/502/503/504


@functools.lru_cache(maxsize=8)
def client(storage: Storage, timeout: float = 10.0, attempts: int = ATTEMPTS):
    """A botocore S3 client for the store of `storage`, one per store, timeout and attempts:
    every upstream's Bucket shares it (clients are thread-safe; making one reads the S3 model)."""
    import botocore.config
    import botocore.session

    # Every session variable at its default, with no environment variable or config file key
    # behind it; the config and credentials files are no file at all.
    isolated = {name: (None, None, default, convert)
                for name, (_, _, default, convert) in botocore.session.Session.SESSION_VARIABLES.items()}
    isolated["config_file"] = isolated["credentials_file"] = (None, None, os.devnull, None)
    session = botocore.session.Session(session_vars=isolated)
    config = botocore.config.Config(
        signature_version="s3v4", connect_timeout=timeout, read_timeout=timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
        proxies={},  # None would mean "from the environment"
        s3={"addressing_style": "path" if storage.s3_path_style else "virtual",
            "use_accelerate_endpoint": False, "use_dualstack_endpoint": False,
            "use_arn_region": False},
    )
    # The store's CA when one is given (as the registry is given it), else the public CAs.
    return session.create_client(
        "s3", region_name=storage.s3_region, endpoint_url=storage.s3_endpoint,
        use_ssl=storage.s3_secure, verify=storage.ca_bundle or True,
        aws_access_key_id=storage.s3_access_key, aws_secret_access_key=storage.s3_secret_key,
        config=config)


def _refusal(status: int) -> str:
    if status == 403:
        return (" (Forbidden: the store refuses DOCKER_MIRROR_S3_ACCESS_KEY_ID and "
                "DOCKER_MIRROR_S3_SECRET_KEY, or they may not read the bucket)")
    if status in (301, 307, 400):
        return " (is DOCKER_MIRROR_S3_REGION the bucket's region?)"
    return ""


def _no_bucket(err: Exception) -> bool:
    """The store says the bucket itself is missing (a GET's or LIST's 404 says which: NoSuchKey
    or NoSuchBucket; a HEAD's has no body to say it)."""
    import botocore.exceptions

    return isinstance(err, botocore.exceptions.ClientError) \
        and err.response.get("Error", {}).get("Code") == "NoSuchBucket"


def _cause(err: Exception) -> str:
    """A transport error in one line, with what to do about an untrusted certificate."""
    import botocore.exceptions

    text = " ".join(str(err).split())
    if isinstance(err, botocore.exceptions.SSLError):
        return (f"TLS: {text}; give the CA that signed the store's certificate in "
                "DOCKER_MIRROR_STORAGE_CA_BUNDLE")
    return f"{type(err).__name__}: {text}"


class Bucket(ObjectStore):
    """The objects one mirror (upstream) keeps in the s3 backend's bucket."""

    def __init__(self, storage: Storage, upstream_key: str, timeout: float = 10.0,
                 attempts: int = ATTEMPTS):
        self.storage = storage
        self.prefix = f"{storage.s3_root.strip('/')}/{upstream_key}/docker/registry/v2"
        self.timeout = timeout
        self.where = f"s3 bucket {storage.s3_bucket} at {storage.s3_endpoint}"
        self.s3 = client(storage, timeout, attempts)

    def _failed(self, what: str, err: Exception) -> StoreError:
        import botocore.exceptions

        if _no_bucket(err):
            # Never an empty cache: a misspelt bucket would read as "nothing cached" forever.
            return StoreError(
                f"{self.where}: {what}: the bucket does not exist (NoSuchBucket): check "
                "DOCKER_MIRROR_S3_BUCKET, and that DOCKER_MIRROR_S3_ENDPOINT is the store that "
                "holds it (the registry does not create it)")
        if isinstance(err, botocore.exceptions.ClientError):
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return StoreError(f"{self.where}: {what} answered {status}{_refusal(status)}")
        return StoreError(f"{self.where}: {what}: {_cause(err)}")

    def list(self, prefix: str, limit: int | None = None) -> list[StoredObject]:
        import botocore.exceptions

        found = []
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.storage.s3_bucket, Prefix=prefix,
                PaginationConfig={"MaxItems": limit, "PageSize": min(limit or 1000, 1000)})
            for page in pages:
                found += [StoredObject(o["Key"], int(o.get("Size", 0)), o["LastModified"].timestamp())
                          for o in page.get("Contents", [])]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
            raise self._failed(f"LIST {prefix}", err) from None
        return found

    def read(self, key: str, limit: int) -> bytes | None:
        import botocore.exceptions

        try:
            answer = self.s3.get_object(Bucket=self.storage.s3_bucket, Key=key, Range=f"bytes=0-{limit - 1}")
            return answer["Body"].read(limit)
        except botocore.exceptions.ClientError as err:
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status == 404 and not _no_bucket(err):   # NoSuchKey: not cached
                return None
            if status == 416:   # an empty object: no byte 0 to start the range at
                return b""
            raise self._failed(f"GET {key}", err) from None
        except botocore.exceptions.BotoCoreError as err:
            raise self._failed(f"GET {key}", err) from None

    def delete(self, keys: list[str]) -> None:
        import botocore.exceptions

        for start in range(0, len(keys), 1000):   # S3's limit per DeleteObjects request
            batch = keys[start:start + 1000]
            try:
                answer = self.s3.delete_objects(Bucket=self.storage.s3_bucket, Delete={
                    "Objects": [{"Key": k} for k in batch], "Quiet": True})
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
                raise self._failed(f"DELETE {len(batch)} object(s) under {self.prefix}", err) from None
            errors = [e for e in answer.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                raise StoreError(f"{self.where}: DELETE {errors[0].get('Key')} answered "
                                 f"{errors[0].get('Code')}: {errors[0].get('Message', '')}")

    def size(self, key: str) -> int | None:
        """The object's size, None when there is none; a WarmError when the store refuses
        or cannot be reached (after botocore's retries)."""
        import botocore.exceptions

        where = f"s3 bucket {self.storage.s3_bucket} at {self.storage.s3_endpoint}"
        try:
            answer = self.s3.head_object(Bucket=self.storage.s3_bucket, Key=key)
        except botocore.exceptions.ClientError as err:
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status == 404:
                return None
            raise WarmError(f"{where}: HEAD {key} answered {status}{_refusal(status)}") from None
        except botocore.exceptions.BotoCoreError as err:
            raise WarmError(f"{where}: {_cause(err)}") from None
        return int(answer.get("ContentLength", 0))
