"""The azure backend's blob containers, read by the product itself: requests signed with the
account key (Azure Storage's Shared Key scheme).

distribution 2.8's azure driver keeps a registry's files as blobs named by
their paths ("/docker/registry/v2/...", leading slash included) in one
container per upstream (2.8 has no root directory): a blob is cached for a
repository when its data blob exists and the repository links it, as on a
filesystem or in an s3 bucket. The warm engine asks that (HEAD); setup asks
the service why a registry did not start (diagnose). The signature is
computed here (hashlib and hmac) rather than by Azure's SDK (azure-storage-blob
and azure-core, several MB, for two headers). The key signs and is never logged.

TLS is checked as the registry container checks it: this host's CAs (the
offline-built image carries this host's bundle) plus DOCKER_MIRROR_STORAGE_CA_BUNDLE.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import re
import ssl
from urllib.parse import parse_qsl, quote, urlsplit

import urllib3

from ..config.storage import Storage
from ..errors import WarmError

# Any version the service accepts for these requests; the 2.8 driver itself sends 2018-03-28.
API_VERSION = "2019-12-12"
# The headers Shared Key signs by value, in this order (then x-ms-*, then the resource).
_STANDARD = ("content-encoding", "content-language", "content-length", "content-md5", "content-type",
             "date", "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range")


def shared_key_headers(account: str, key: str, method: str, url: str, body: bytes = b"",
                       headers: dict | None = None, now: datetime.datetime | None = None) -> dict:
    """The headers that sign one request with the account key (Shared Key, version 2009-09-19 on)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    headers = {"x-ms-date": now.strftime("%a, %d %b %Y %H:%M:%S GMT"), "x-ms-version": API_VERSION,
               **(headers or {})}
    if body:
        headers["Content-Length"] = str(len(body))
    lower = {k.lower(): v for k, v in headers.items()}
    parts = urlsplit(url)
    resource = f"/{account}{parts.path or '/'}"
    for name, value in sorted((k.lower(), v) for k, v in parse_qsl(parts.query)):
        resource += f"\n{name}:{value}"
    to_sign = "\n".join([method, *(lower.get(h, "") for h in _STANDARD)]) + "\n"
    to_sign += "".join(f"{k}:{v.strip()}\n" for k, v in sorted(lower.items()) if k.startswith("x-ms-"))
    to_sign += resource
    digest = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
    return {**headers, "Authorization": f"SharedKey {account}:{base64.b64encode(digest).decode()}"}


def endpoint_of(storage: Storage) -> str:
    """The blob service as the 2.8 driver builds its URL (Azure SDK's getBaseURL): always HTTPS."""
    return f"https://{storage.azure_account_name}.blob.{storage.azure_realm}"


def _trust(storage: Storage) -> ssl.SSLContext:
    context = ssl.create_default_context()   # this host's CAs, as in the offline-built image
    if storage.ca_bundle:
        context.load_verify_locations(storage.ca_bundle)
    return context


class Service:
    """Signed requests to the account's blob service (no proxy from the environment)."""

    def __init__(self, storage: Storage, timeout: float = 10.0):
        self.storage = storage
        self.endpoint = endpoint_of(storage)
        self.http = urllib3.PoolManager(ssl_context=_trust(storage), retries=False,
                                        timeout=urllib3.Timeout(timeout))

    def request(self, method: str, path: str) -> urllib3.BaseHTTPResponse:
        """`path` as sent (quoted); urllib3's errors are the caller's."""
        url = self.endpoint + path
        headers = shared_key_headers(self.storage.azure_account_name, self.storage.azure_account_key,
                                     method, url)
        return self.http.request(method, url, headers=headers, preload_content=True, redirect=False)


class Container:
    """The blobs one mirror (upstream) keeps in its azure container (the s3.Bucket of azure)."""

    def __init__(self, storage: Storage, upstream_key: str, timeout: float = 10.0):
        self.service = Service(storage, timeout)
        self.container = storage.azure_container_for(upstream_key)
        self.prefix = "/docker/registry/v2"

    def size(self, key: str) -> int | None:
        """The blob's size, None when there is none; a WarmError when the store refuses."""
        where = f"azure container {self.container} at {self.service.endpoint}"
        try:
            # key starts with "/": the URL has ".../<container>//docker/...", as the driver's
            answer = self.service.request("HEAD", f"/{self.container}/{quote(key, safe='/-_.~')}")
        except urllib3.exceptions.HTTPError as err:
            raise WarmError(f"{where}: {reason(err)}") from None
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise WarmError(f"{where}: HEAD {key} answered {answer.status}")
        return int(answer.headers.get("Content-Length", 0))

    def data_key(self, digest: str) -> str:
        algorithm, hex_ = digest.split(":", 1)
        return f"{self.prefix}/blobs/{algorithm}/{hex_[:2]}/{hex_}/data"

    def link_key(self, repository: str, digest: str) -> str:
        algorithm, hex_ = digest.split(":", 1)
        return f"{self.prefix}/repositories/{repository}/_layers/{algorithm}/{hex_}/link"

    def linked(self, repository: str, digest: str) -> bool:
        """The mirror serves this blob to `repository` from the container."""
        return self.size(self.link_key(repository, digest)) is not None \
            and self.size(self.data_key(digest)) is not None


def reason(err: Exception) -> str:
    """The innermost cause of a transport error, in a line (not urllib3's nested repr)."""
    text = str(err)
    for pattern in (r"certificate verify failed: ([^('\"]+)", r"\[Errno [-\d]+\] ([^)('\"]+)",
                    r"Connection refused", r"timed out"):
        found = re.search(pattern, text)
        if found:
            return (found.group(1) if found.groups() else found.group(0)).strip()
    return type(err).__name__


def diagnose(storage: Storage) -> str:
    """Why a registry on this azure storage may not start, as the service answers the product's own
    request; "" when it answers well (the cause is elsewhere).

    distribution 2.8 makes its container at start: a refused key panics at once, but a
    transport error (an untrusted certificate, nothing listening, a name that does not
    resolve) is retried for minutes with nothing in its log.
    """
    service = Service(storage, timeout=5.0)
    where = f"the azure blob service {service.endpoint} (DOCKER_MIRROR_AZURE_ACCOUNT_NAME and _REALM)"
    try:
        answer = service.request("GET", "/?comp=list&maxresults=1")
    except urllib3.exceptions.SSLError as err:
        trusted = f"this host's CAs and DOCKER_MIRROR_STORAGE_CA_BUNDLE={storage.ca_bundle}" \
            if storage.ca_bundle else "this host's CAs (DOCKER_MIRROR_STORAGE_CA_BUNDLE is empty)"
        return (f"{where}: TLS: certificate verify failed ({reason(err)}) with {trusted}: "
                "give the CA that signed its certificate in DOCKER_MIRROR_STORAGE_CA_BUNDLE")
    except urllib3.exceptions.HTTPError as err:
        cause = reason(err)
        hint = ""
        if "Name or service not known" in cause or "not known" in cause:
            host = urlsplit(service.endpoint).hostname
            hint = (f": its name does not resolve here; the registry containers use this host's "
                    f"/etc/hosts (e.g. a line '127.0.0.1 {host}' for an emulator on this host)")
        return f"{where}: cannot connect ({cause}){hint}"
    if answer.status == 403:
        return (f"{where} refuses DOCKER_MIRROR_AZURE_ACCOUNT_KEY for account "
                f"{storage.azure_account_name} (403): give the account's access key")
    if answer.status != 200:
        return f"{where} answered {answer.status} to a signed request for its containers"
    return ""
