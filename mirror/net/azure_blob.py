"""The azure backend's blob containers, read by the product itself through Azure's SDK
(azure-storage-blob): it signs each request with the account key (Shared Key), puts the
blob names in URLs and turns the service's answers into typed errors.

distribution 2.8's azure driver keeps a registry's files as blobs named by
their paths ("/docker/registry/v2/...", leading slash included) in one
container per upstream (2.8 has no root directory): a blob is cached for a
repository when its data blob exists and the repository links it, as on a
filesystem or in an s3 bucket. The warm engine asks that (HEAD); setup asks
the service why a registry did not start (diagnose). The key signs and is
never sent nor logged.

The SDK sends through requests, on a session of ours: TLS is checked as the
registry container checks it, against this host's CAs (the offline-built image
carries this host's bundle) plus DOCKER_MIRROR_STORAGE_CA_BUNDLE, and nothing
comes from the environment (no proxy, no ~/.netrc, no REQUESTS_CA_BUNDLE).
requests and the SDK are imported when a container or a diagnosis first needs
them (the SDK alone takes about 0.2 s): the commands that never read azure
storage do not pay for it.
"""

from __future__ import annotations

import re
import ssl
from urllib.parse import urlsplit

from ..model.settings import Storage
from ..errors import StoreError, WarmError
from .object_store import ObjectStore, StoredObject

# Any version the service accepts for these requests (the 2.8 driver itself sends 2018-03-28);
# the SDK's default is its newest, which older emulators and Azure Stack refuse.
API_VERSION = "2019-12-12"
# The warm engine's HEADs: the SDK retries connection errors, timeouts, 408 and 5xx, 0.5 s apart.
ATTEMPTS = 3


def endpoint_of(storage: Storage) -> str:
    """The blob service as the 2.8 driver builds its URL (Azure SDK's getBaseURL): always HTTPS."""
    return f"https://{storage.azure_account_name}.blob.{storage.azure_realm}"


def _trust(storage: Storage) -> ssl.SSLContext:
    context = ssl.create_default_context()   # this host's CAs, as in the offline-built image
    if storage.ca_bundle:
        context.load_verify_locations(storage.ca_bundle)
    return context


def _session(storage: Storage):
    """A requests session for the SDK's transport: verifies with _trust's context alone and
    reads nothing from the environment."""
    import requests
    from requests.adapters import HTTPAdapter

    context = _trust(storage)

    class Trusting(HTTPAdapter):
        # requests' documented hook for an SSLContext of one's own (requests >= 2.32.2).
        def build_connection_pool_key_attributes(self, request, verify, cert=None):
            host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
            pool = {k: v for k, v in pool.items() if k not in ("ca_certs", "ca_cert_dir")}
            return host, {**pool, "ssl_context": context, "cert_reqs": "CERT_REQUIRED"}

        def cert_verify(self, conn, url, verify, cert):
            pass  # the context verifies: requests would load certifi's bundle into it as well

    session = requests.Session()
    session.trust_env = False   # no proxy, .netrc or CA bundle from the environment
    session.mount("https://", Trusting(max_retries=0))   # the SDK's retry policy retries
    return session


def _service(storage: Storage, timeout: float, attempts: int):
    from azure.storage.blob import BlobServiceClient, LinearRetry

    return BlobServiceClient(
        endpoint_of(storage),
        credential={"account_name": storage.azure_account_name, "account_key": storage.azure_account_key},
        session=_session(storage), api_version=API_VERSION,
        connection_timeout=timeout, read_timeout=timeout, permit_redirects=False,
        retry_policy=LinearRetry(backoff=0.5, random_jitter_range=0.25, retry_total=attempts - 1))


class Container(ObjectStore):
    """The blobs one mirror (upstream) keeps in its azure container (the s3.Bucket of azure)."""

    def __init__(self, storage: Storage, upstream_key: str, timeout: float = 10.0,
                 attempts: int = ATTEMPTS):
        self.endpoint = endpoint_of(storage)
        self.container = storage.azure_container_for(upstream_key)
        self.prefix = "/docker/registry/v2"
        self.where = f"azure container {self.container} at {self.endpoint}"
        self.blobs = _service(storage, timeout, attempts).get_container_client(self.container)

    def _failed(self, what: str, err: Exception) -> StoreError:
        from azure.core.exceptions import HttpResponseError

        if isinstance(err, HttpResponseError) and err.status_code is not None:
            refused = " (Forbidden: the store refuses DOCKER_MIRROR_AZURE_ACCOUNT_KEY)" \
                if err.status_code == 403 else ""
            return StoreError(f"{self.where}: {what} answered {err.status_code}{refused}")
        return StoreError(f"{self.where}: {what}: {reason(err)}")

    def list(self, prefix: str, limit: int | None = None) -> list[StoredObject]:
        from itertools import islice

        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            listed = self.blobs.list_blobs(name_starts_with=prefix, results_per_page=min(limit or 5000, 5000))
            return [StoredObject(b.name, int(b.size or 0), b.last_modified.timestamp())
                    for b in islice(listed, limit)]
        except ResourceNotFoundError:
            return []   # no container yet: the registry makes it at start
        except AzureError as err:
            raise self._failed(f"LIST {prefix}", err) from None

    def read(self, key: str, limit: int) -> bytes | None:
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

        try:
            return self.blobs.download_blob(key, offset=0, length=limit, max_concurrency=1).readall()
        except ResourceNotFoundError as err:
            if err.error_code != "ContainerNotFound":   # BlobNotFound: not cached
                return None
            # Never "not cached": a misspelt container would read as that forever.
            raise StoreError(
                f"{self.where}: GET {key}: the container does not exist (ContainerNotFound): check "
                "DOCKER_MIRROR_AZURE_CONTAINER (each upstream's container is that prefix, a dash "
                "and the upstream) and DOCKER_MIRROR_AZURE_ACCOUNT_NAME; the mirror's registry "
                "creates it when it starts") from None
        except HttpResponseError as err:
            if err.status_code == 416:   # an empty blob: no byte 0 to start the range at
                return b""
            raise self._failed(f"GET {key}", err) from None
        except AzureError as err:
            raise self._failed(f"GET {key}", err) from None

    def delete(self, keys: list[str]) -> None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        for key in keys:   # one request each: emulators and Azure Stack lack batch deletes
            try:
                self.blobs.delete_blob(key)
            except ResourceNotFoundError:
                pass
            except AzureError as err:
                raise self._failed(f"DELETE {key}", err) from None

    def size(self, key: str) -> int | None:
        """The blob's size, None when there is none; a WarmError when the store refuses or
        cannot be reached (after the SDK's retries)."""
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

        where = f"azure container {self.container} at {self.endpoint}"
        try:
            # key starts with "/": the SDK sends ".../<container>//docker/...", as the driver does
            return self.blobs.get_blob_client(key).get_blob_properties().size
        except ResourceNotFoundError:
            return None
        except HttpResponseError as err:
            if err.status_code is None:   # no answer to tell (a body cut short, a signing error)
                raise WarmError(f"{where}: {reason(err)}") from None
            refused = " (Forbidden: the store refuses DOCKER_MIRROR_AZURE_ACCOUNT_KEY)" \
                if err.status_code == 403 else ""
            raise WarmError(f"{where}: HEAD {key} answered {err.status_code}{refused}") from None
        except AzureError as err:
            raise WarmError(f"{where}: {reason(err)}") from None


def _causes(err: BaseException) -> list[BaseException]:
    """err and what it wraps: the SDK's inner_exception, requests' and urllib3's arguments and
    reasons, the exceptions they were raised from."""
    found: list[BaseException] = []
    todo = [err]
    while todo:
        cause = todo.pop()
        if isinstance(cause, BaseException) and not any(cause is seen for seen in found):
            found.append(cause)
            todo += [getattr(cause, "inner_exception", None), getattr(cause, "reason", None),
                     cause.__cause__, cause.__context__, *cause.args]
    return found


def reason(err: Exception) -> str:
    """The innermost cause of a transport error, in a line (not the SDK's, requests' and urllib3's
    nested reprs)."""
    text = " ".join(str(cause) for cause in _causes(err))
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
    from azure.core.exceptions import AzureError, HttpResponseError

    endpoint = endpoint_of(storage)
    where = f"the azure blob service {endpoint} (DOCKER_MIRROR_AZURE_ACCOUNT_NAME and _REALM)"
    service = _service(storage, timeout=5.0, attempts=1)   # one request: setup is waiting to say why
    try:
        next(service.list_containers(results_per_page=1).by_page())   # GET /?comp=list&maxresults=1
    except HttpResponseError as err:
        if err.status_code == 403:
            return (f"{where} refuses DOCKER_MIRROR_AZURE_ACCOUNT_KEY for account "
                    f"{storage.azure_account_name} (403): give the account's access key")
        if err.status_code is not None:
            return f"{where} answered {err.status_code} to a signed request for its containers"
        return f"{where}: cannot connect ({reason(err)})"
    except AzureError as err:
        if any(isinstance(cause, ssl.SSLError) for cause in _causes(err)):
            trusted = f"this host's CAs and DOCKER_MIRROR_STORAGE_CA_BUNDLE={storage.ca_bundle}" \
                if storage.ca_bundle else "this host's CAs (DOCKER_MIRROR_STORAGE_CA_BUNDLE is empty)"
            return (f"{where}: TLS: certificate verify failed ({reason(err)}) with {trusted}: "
                    "give the CA that signed its certificate in DOCKER_MIRROR_STORAGE_CA_BUNDLE")
        cause = reason(err)
        hint = ""
        if "not known" in cause:
            host = urlsplit(endpoint).hostname
            hint = (f": its name does not resolve here; the registry containers use this host's "
                    f"/etc/hosts (e.g. a line '127.0.0.1 {host}' for an emulator on this host)")
        return f"{where}: cannot connect ({cause}){hint}"
    finally:
        service.close()
    return ""
