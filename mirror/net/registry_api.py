"""A small client for the registry HTTP API v2 (distribution spec): all of the
package's registry HTTP besides the bounded liveness probes (net.probes).

Used against our own mirrors and against upstreams: manifests, streamed
blobs with their digest checked, uploads, and the anonymous bearer-token
flow Docker Hub-style registries ask for. Transient failures (connection
errors, 429, 5xx) are retried with exponential backoff.

Nothing a server says is taken on trust: each request has an overall
deadline and each body read whole a size cap (net.bounded); a manifest's
digest is computed from its body (a Docker-Content-Digest header that
disagrees is refused); digests are validated before they name a URL path.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from urllib.parse import urlsplit

import requests

from ..errors import DigestMismatch, RegistryAPIError, TransferBroken
from ..model import digests
from ..model.endpoint import Endpoint
from ..model.manifests import MANIFEST_TYPES, MAX_MANIFEST, Manifest
from . import bounded
from .bounded import Watched, display, error_text, read_capped

CHUNK = bounded.CHUNK
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
UPSTREAM_TIMEOUT = 1.5     # seconds for an upstream to answer /v2/
MAX_TOKEN = 1 << 20
# Every request of the product's own (warm, refresh, archive, restore) says so: the cache's
# lifecycle reads last use from the mirrors' access logs and counts only clients' pulls
# (services.lifecycle.is_own_agent). A client passes its own `user_agent` (tests do).
USER_AGENT = "docker-mirror/1"


def upstream_answers(url: str, timeout: float = UPSTREAM_TIMEOUT) -> bool:
    """True when the upstream registry answers at all (401 from Docker Hub counts),
    headers complete within `timeout` however slowly it talks."""
    return bounded.answers(url, timeout)


def _bearer_challenge(header: str) -> dict[str, str] | None:
    if not header.lower().startswith("bearer "):
        return None
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


class RegistryAPI:
    """One registry base URL; thread-safe for concurrent requests (one session each call)."""

    @classmethod
    def of_mirror(cls, endpoint: Endpoint, tls_certificate: str | None = None,
                  auth: tuple[str, str] | None = None) -> "RegistryAPI":
        """The API of our own mirror at `endpoint` (its certificate may be self-signed)."""
        user, password = auth or ("", "")
        # The mirror's own certificate is pinned: trusted as the one anchor, so the
        # name it carries need not be the address dialled (127.0.0.1 for a LAN name).
        return cls(endpoint.url, username=user, password=password, verify=tls_certificate or True,
                   check_hostname=not tls_certificate)

    def __init__(self, base_url: str, *, username: str = "", password: str = "",
                 timeout: float = 30.0, retries: int = 3, backoff: float = 0.5, verify=True,
                 check_hostname: bool = True, user_agent: str = USER_AGENT):
        self.base_url = base_url.rstrip("/")
        self.user_agent = user_agent
        self.check_hostname = check_hostname
        self.auth = (username, password) if username else None
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.verify = verify
        self.tokens: dict[str, str] = {}

    def _sends_credentials_to(self, realm: str) -> bool:
        """Basic credentials go to a token realm over TLS, or to the registry's own host:
        never in clear text to some other host a registry names."""
        parts, own = urlsplit(realm), urlsplit(self.base_url)
        return parts.scheme == "https" or parts.hostname == own.hostname

    def _token(self, challenge: dict[str, str], scope: str) -> str:
        realm = challenge.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryAPIError(f"{display(self.base_url)}: token realm {realm[:80]!r} is not an http(s) URL")
        params = {"service": challenge.get("service", ""), "scope": challenge.get("scope", scope)}
        auth = self.auth if self._sends_credentials_to(realm) else None
        with Watched(self.timeout, f"token from {display(realm)}", self.check_hostname) as watch:
            try:
                answer = watch.session.get(realm, params=params, auth=auth, stream=True,
                                           timeout=self.timeout, verify=self.verify)
            except requests.RequestException as err:
                raise (watch.expired() if watch.fired else RegistryAPIError(
                    f"token from {display(realm)}: {err.__class__.__name__}")) from None
            if answer.status_code != 200:
                answer.close()
                raise RegistryAPIError(f"token from {display(realm)} refused ({answer.status_code})",
                                       answer.status_code)
            body = read_capped(answer, MAX_TOKEN, f"token from {display(realm)}", watch)
        try:
            token = json.loads(body)
        except ValueError:
            token = None
        if not isinstance(token, dict):
            raise RegistryAPIError(f"token from {display(realm)}: not a JSON object")
        value = token.get("token") or token.get("access_token", "")
        return value if isinstance(value, str) else ""

    def request(self, method: str, path: str, *, scope: str = "", stream: bool = False,
                headers: dict | None = None, watch: Watched | None = None,
                **kwargs) -> requests.Response:
        """One request, retried on transient failures; the answer is streamed, under
        `watch`'s deadline (the caller's, or one of `timeout` owned by the answer)."""
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        shown = f"{method} {display(url)}"
        headers = {"User-Agent": self.user_agent, **(headers or {})}
        for attempt in range(self.retries + 1):
            if scope in self.tokens:
                headers["Authorization"] = f"Bearer {self.tokens[scope]}"
            own = watch or Watched(self.timeout, shown, self.check_hostname)
            try:
                answer = own.session.request(method, url, headers=headers, stream=True,
                                             timeout=(min(self.timeout, own.remaining()), self.timeout),
                                             verify=self.verify,
                                             auth=None if scope in self.tokens else self.auth, **kwargs)
            except requests.RequestException as err:
                fired = own.fired
                if own is not watch:
                    own.close()
                if fired:
                    raise own.expired() from None
                if attempt == self.retries:
                    raise RegistryAPIError(f"{shown}: {err.__class__.__name__}: "
                                           f"{display(str(err))[:300]}") from None
                time.sleep(self.backoff * 2 ** attempt)
                continue
            answer.watch = own
            if own is not watch:
                # The answer owns its watchdog: closing the answer stops it.
                _close = answer.close

                def close(_close=_close, own=own):
                    _close()
                    own.close()
                answer.close = close
            challenge = _bearer_challenge(answer.headers.get("WWW-Authenticate", ""))
            if answer.status_code == 401 and challenge and scope not in self.tokens:
                answer.close()
                self.tokens[scope] = self._token(challenge, scope)
                continue
            if answer.status_code in RETRY_STATUS and attempt < self.retries:
                answer.close()
                time.sleep(self.backoff * 2 ** attempt)
                continue
            return answer
        return answer

    def _failed(self, answer: requests.Response, what: str) -> RegistryAPIError:
        text = error_text(answer, answer.watch)
        answer.close()
        return RegistryAPIError(f"{what}: HTTP {answer.status_code} {text}".rstrip(), answer.status_code)

    def get_manifest(self, repository: str, reference: str, *, method: str = "GET") -> Manifest:
        """A manifest by tag or digest; its digest is always that of the body received."""
        if reference.startswith("sha256:"):
            digests.require(reference, f"manifest {repository}@")
        what = f"manifest {repository}:{reference}"
        answer = self.request(method, f"/v2/{repository}/manifests/{reference}",
                              scope=f"repository:{repository}:pull",
                              headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if answer.status_code != 200:
            raise self._failed(answer, what)
        try:
            body = read_capped(answer, MAX_MANIFEST, what, answer.watch)
        finally:
            answer.close()
        claimed = answer.headers.get("Docker-Content-Digest", "")
        # HEAD has no body to hash: the header is all there is, and is checked as a digest.
        digest = digests.of(body) if method == "GET" else digests.require(claimed, what)
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(f"manifest {repository}@{reference}: content does not match its digest")
        if claimed and claimed != digest:
            raise DigestMismatch(f"{what}: Docker-Content-Digest {claimed[:80]!r} does not match "
                                 f"the body received ({digest})")
        media_type = answer.headers.get("Content-Type", "").split(";")[0].strip()
        if not media_type:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            media_type = parsed.get("mediaType", "") if isinstance(parsed, dict) else ""
        return Manifest(digest, media_type if isinstance(media_type, str) else "", body)

    def fetch_blob(self, repository: str, digest: str, sink=None) -> int:
        """Stream a blob, check its sha256, hand chunks to `sink`; returns its size.
        The deadline moves on with every chunk: a blob may be large, never stalled."""
        digests.require(digest, f"blob of {repository}")
        what = f"blob {repository}@{digest}"
        answer = self.request("GET", f"/v2/{repository}/blobs/{digest}",
                              scope=f"repository:{repository}:pull", stream=True)
        watch = answer.watch
        try:
            if answer.status_code != 200:
                raise self._failed(answer, what)
            hasher = hashlib.sha256()
            size = 0
            try:
                for chunk in answer.iter_content(CHUNK):
                    watch.extend()
                    hasher.update(chunk)
                    size += len(chunk)
                    if sink:
                        sink(chunk)
            except requests.RequestException as err:
                if watch.fired:
                    raise RegistryAPIError(f"{what}: stalled for {watch.seconds:g} s after "
                                           f"{size} bytes") from None
                raise TransferBroken(f"{what}: transfer broke after "
                                     f"{size} bytes ({err.__class__.__name__})") from None
            if watch.fired:
                raise RegistryAPIError(f"{what}: stalled for {watch.seconds:g} s after {size} bytes")
        finally:
            answer.close()
        if "sha256:" + hasher.hexdigest() != digest:
            raise DigestMismatch(f"blob {repository}@{digest}: content does not match its digest "
                                 f"({size} bytes received)")
        return size

    def open_blob(self, repository: str, digest: str) -> None:
        """Ask for a blob and hang up once it is being served (nothing read, nothing checked)."""
        digests.require(digest, f"blob of {repository}")
        answer = self.request("GET", f"/v2/{repository}/blobs/{digest}",
                              scope=f"repository:{repository}:pull", stream=True)
        if answer.status_code != 200:
            raise self._failed(answer, f"blob {repository}@{digest}")
        answer.close()

    def blob_exists(self, repository: str, digest: str) -> bool:
        digests.require(digest, f"blob of {repository}")
        answer = self.request("HEAD", f"/v2/{repository}/blobs/{digest}",
                              scope=f"repository:{repository}:pull,push")
        answer.close()
        return answer.status_code == 200

    def upload_blob(self, repository: str, digest: str, data: bytes) -> None:
        digests.require(digest, f"blob for {repository}")
        scope = f"repository:{repository}:pull,push"
        start = self.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope)
        if start.status_code != 202:
            raise self._failed(start, f"upload to {repository} refused")
        start.close()
        location = start.headers.get("Location", "")
        if not location:
            raise RegistryAPIError(f"upload to {repository}: no Location in the answer")
        if not location.startswith("http"):
            location = self.base_url + location
        joiner = "&" if "?" in location else "?"
        done = self.request("PUT", f"{location}{joiner}digest={digest}", scope=scope, data=data,
                            headers={"Content-Type": "application/octet-stream"})
        if done.status_code != 201:
            raise self._failed(done, f"upload of {digest} to {repository}")
        done.close()

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> None:
        answer = self.request("PUT", f"/v2/{repository}/manifests/{reference}",
                              scope=f"repository:{repository}:pull,push", data=manifest.body,
                              headers={"Content-Type": manifest.media_type})
        if answer.status_code != 201:
            raise self._failed(answer, f"manifest {repository}:{reference}")
        answer.close()
