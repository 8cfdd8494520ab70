"""A small client for the registry HTTP API v2 (distribution spec): all of the
package's registry HTTP besides the bounded liveness probes (net.probes).

Used against our own mirrors and against upstreams: manifests, streamed
blobs with their digest checked, uploads, and the anonymous bearer-token
flow Docker Hub-style registries ask for. Transient failures (connection
errors, 429, 5xx) are retried with exponential backoff.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

import requests

from ..errors import DigestMismatch, RegistryAPIError
from ..model.endpoint import Endpoint
from ..model.manifests import MANIFEST_TYPES, Manifest

CHUNK = 1 << 20
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
UPSTREAM_TIMEOUT = 1.5     # seconds for an upstream to answer /v2/


def upstream_answers(url: str, timeout: float = UPSTREAM_TIMEOUT) -> bool:
    """True when the upstream registry answers at all (401 from Docker Hub counts)."""
    try:
        return requests.get(f"{url}/v2/", timeout=timeout).status_code < 500
    except requests.RequestException:
        return False


def _bearer_challenge(header: str) -> dict[str, str] | None:
    if not header.lower().startswith("bearer "):
        return None
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


class RegistryAPI:
    """One registry base URL; thread-safe for concurrent requests (one session each call)."""

    @classmethod
    def of_mirror(cls, endpoint: Endpoint, tls_certificate: str | None = None) -> "RegistryAPI":
        """The API of our own mirror at `endpoint` (its certificate may be self-signed)."""
        return cls(endpoint.url, verify=tls_certificate or True)

    def __init__(self, base_url: str, *, username: str = "", password: str = "",
                 timeout: float = 30.0, retries: int = 3, backoff: float = 0.5, verify=True):
        self.base_url = base_url.rstrip("/")
        self.auth = (username, password) if username else None
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.verify = verify
        self.tokens: dict[str, str] = {}

    def _token(self, challenge: dict[str, str], scope: str) -> str:
        params = {"service": challenge.get("service", ""), "scope": challenge.get("scope", scope)}
        answer = requests.get(challenge["realm"], params=params, auth=self.auth,
                              timeout=self.timeout, verify=self.verify)
        if answer.status_code != 200:
            raise RegistryAPIError(f"token from {challenge['realm']} refused ({answer.status_code})",
                                   answer.status_code)
        body = answer.json()
        return body.get("token") or body.get("access_token", "")

    def request(self, method: str, path: str, *, scope: str = "", stream: bool = False,
                headers: dict | None = None, **kwargs) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        headers = dict(headers or {})
        for attempt in range(self.retries + 1):
            if scope in self.tokens:
                headers["Authorization"] = f"Bearer {self.tokens[scope]}"
            try:
                answer = requests.request(method, url, headers=headers, stream=stream,
                                          timeout=self.timeout, verify=self.verify,
                                          auth=None if scope in self.tokens else self.auth, **kwargs)
            except requests.RequestException as err:
                if attempt == self.retries:
                    raise RegistryAPIError(f"{method} {url}: {err.__class__.__name__}: {err}") from None
                time.sleep(self.backoff * 2 ** attempt)
                continue
            challenge = _bearer_challenge(answer.headers.get("WWW-Authenticate", ""))
            if answer.status_code == 401 and challenge and scope not in self.tokens:
                self.tokens[scope] = self._token(challenge, scope)
                continue
            if answer.status_code in RETRY_STATUS and attempt < self.retries:
                answer.close()
                time.sleep(self.backoff * 2 ** attempt)
                continue
            return answer
        return answer

    def get_manifest(self, repository: str, reference: str, *, method: str = "GET") -> Manifest:
        answer = self.request(method, f"/v2/{repository}/manifests/{reference}",
                              scope=f"repository:{repository}:pull",
                              headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if answer.status_code != 200:
            raise RegistryAPIError(f"manifest {repository}:{reference}: HTTP {answer.status_code} "
                                   f"{answer.text[:200].strip()}", answer.status_code)
        body = answer.content
        digest = answer.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and "sha256:" + hashlib.sha256(body).hexdigest() != reference:
            raise DigestMismatch(f"manifest {repository}@{reference}: content does not match its digest")
        media_type = answer.headers.get("Content-Type", "").split(";")[0].strip()
        return Manifest(digest, media_type or json.loads(body).get("mediaType", ""), body)

    def fetch_blob(self, repository: str, digest: str, sink=None) -> int:
        """Stream a blob, check its sha256, hand chunks to `sink`; returns its size."""
        answer = self.request("GET", f"/v2/{repository}/blobs/{digest}",
                              scope=f"repository:{repository}:pull", stream=True)
        with answer:
            if answer.status_code != 200:
                raise RegistryAPIError(f"blob {repository}@{digest}: HTTP {answer.status_code}",
                                       answer.status_code)
            hasher = hashlib.sha256()
            size = 0
            try:
                for chunk in answer.iter_content(CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
                    if sink:
                        sink(chunk)
            except requests.RequestException as err:
                raise RegistryAPIError(f"blob {repository}@{digest}: transfer broke after "
                                       f"{size} bytes ({err.__class__.__name__})") from None
        if "sha256:" + hasher.hexdigest() != digest:
            raise DigestMismatch(f"blob {repository}@{digest}: content does not match its digest "
                                 f"({size} bytes received)")
        return size

    def open_blob(self, repository: str, digest: str) -> None:
        """Ask for a blob and hang up once it is being served (nothing read, nothing checked)."""
        answer = self.request("GET", f"/v2/{repository}/blobs/{digest}",
                              scope=f"repository:{repository}:pull", stream=True)
        answer.close()
        if answer.status_code != 200:
            raise RegistryAPIError(f"blob {repository}@{digest}: HTTP {answer.status_code}",
                                   answer.status_code)

    def blob_exists(self, repository: str, digest: str) -> bool:
        answer = self.request("HEAD", f"/v2/{repository}/blobs/{digest}",
                              scope=f"repository:{repository}:pull,push")
        return answer.status_code == 200

    def upload_blob(self, repository: str, digest: str, data: bytes) -> None:
        scope = f"repository:{repository}:pull,push"
        start = self.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope)
        if start.status_code != 202:
            raise RegistryAPIError(f"upload to {repository} refused: HTTP {start.status_code}",
                                   start.status_code)
        location = start.headers["Location"]
        if not location.startswith("http"):
            location = self.base_url + location
        joiner = "&" if "?" in location else "?"
        done = self.request("PUT", f"{location}{joiner}digest={digest}", scope=scope, data=data,
                            headers={"Content-Type": "application/octet-stream"})
        if done.status_code != 201:
            raise RegistryAPIError(f"upload of {digest} to {repository}: HTTP {done.status_code}",
                                   done.status_code)

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        answer = self.request("PUT", f"/v2/{repository}/manifests/{reference}",
                              scope=f"repository:{repository}:pull,push", data=manifest.body,
                              headers={"Content-Type": manifest.media_type})
        if answer.status_code != 201:
            raise RegistryAPIError(f"manifest {repository}:{reference}: HTTP {answer.status_code} "
                                   f"{answer.text[:200].strip()}", answer.status_code)
