"""The s3 backend's bucket as the warm engine reads it: HEAD requests signed with AWS SigV4.

distribution keeps a repository's blobs in the bucket under the same keys as
on a filesystem (<root>/<upstream>/docker/registry/v2/...): a blob is cached
for a repository when its data object exists and the repository links it.
Only HEAD is needed, so the signature is computed here (hashlib and hmac)
rather than by an SDK. The secret key signs and is never logged.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from urllib.parse import quote, urlsplit

import requests

from ..config.storage import Storage
from ..errors import WarmError

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_headers(method: str, url: str, *, region: str, access_key: str, secret_key: str,
                  now: datetime.datetime, headers: dict[str, str] | None = None,
                  payload_sha256: str = EMPTY_SHA256) -> dict[str, str]:
    """The headers that sign one request to S3 (AWS Signature Version 4, header form)."""
    parts = urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    signed = {"host": parts.netloc, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date,
              **{k.lower(): v.strip() for k, v in (headers or {}).items()}}
    names = sorted(signed)
    query = "&".join(sorted(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                            for k, _, v in (p.partition("=") for p in parts.query.split("&") if p)))
    canonical = "\n".join([method, quote(parts.path or "/", safe="/-_.~"), query,
                           "".join(f"{n}:{signed[n]}\n" for n in names), ";".join(names), payload_sha256])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret_key).encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = {k: v for k, v in signed.items() if k != "host"}
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                            f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return out


class Bucket:
    """The objects one mirror (upstream) keeps in the s3 backend's bucket."""

    def __init__(self, storage: Storage, upstream_key: str, timeout: float = 10.0):
        self.storage = storage
        self.prefix = f"{storage.s3_root.strip('/')}/{upstream_key}/docker/registry/v2"
        self.timeout = timeout
        self.http = requests.Session()
        self.http.trust_env = False  # no proxy or CA bundle from the environment: the endpoint is given

    def _url(self, key: str) -> str:
        parts = urlsplit(self.storage.s3_endpoint)
        path = quote(f"/{key}", safe="/-_.~")
        if self.storage.s3_path_style:
            return f"{parts.scheme}://{parts.netloc}/{self.storage.s3_bucket}{path}"
        return f"{parts.scheme}://{self.storage.s3_bucket}.{parts.netloc}{path}"

    def size(self, key: str) -> int | None:
        """The object's size, None when there is none; a WarmError when the store refuses."""
        url = self._url(key)
        headers = sigv4_headers("HEAD", url, region=self.storage.s3_region,
                                access_key=self.storage.s3_access_key,
                                secret_key=self.storage.s3_secret_key,
                                now=datetime.datetime.now(datetime.timezone.utc))
        try:
            answer = self.http.head(url, headers=headers, timeout=self.timeout)
        except requests.RequestException as err:
            raise WarmError(f"s3 bucket {self.storage.s3_bucket} at {self.storage.s3_endpoint}: "
                            f"{type(err).__name__}") from None
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise WarmError(f"s3 bucket {self.storage.s3_bucket} at {self.storage.s3_endpoint}: "
                            f"HEAD {key} answered {answer.status_code}")
        return int(answer.headers.get("Content-Length", 0))

    def data_key(self, digest: str) -> str:
        algorithm, hex_ = digest.split(":", 1)
        return f"{self.prefix}/blobs/{algorithm}/{hex_[:2]}/{hex_}/data"

    def link_key(self, repository: str, digest: str) -> str:
        algorithm, hex_ = digest.split(":", 1)
        return f"{self.prefix}/repositories/{repository}/_layers/{algorithm}/{hex_}/link"

    def linked(self, repository: str, digest: str) -> bool:
        """The mirror serves this blob to `repository` from the bucket."""
        return self.size(self.link_key(repository, digest)) is not None \
            and self.size(self.data_key(digest)) is not None
