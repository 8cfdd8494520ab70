"""Docker Hub headroom: how many pulls this address (or account) has left.

A manifest HEAD does not count as a pull, and Docker Hub answers it with
`ratelimit-limit` and `ratelimit-remaining` (100 per 6 hours anonymous, 200
signed in). The repository is the one Docker documents for this check.
"""

from __future__ import annotations

from ..model.settings import Upstream
from ..errors import RegistryAPIError
from ..model.traffic import Headroom, parse_headroom
from ..model.manifests import MANIFEST_TYPES
from .registry_api import RegistryAPI

PROBE_REPOSITORY = "ratelimitpreview/test"
TIMEOUT = 3.0          # seconds per request, for the metrics service
STATUS_TIMEOUT = 1.5   # what `make docker-mirror-status` waits at most when the upstream drops packets


def headroom(upstream: Upstream, timeout: float = TIMEOUT) -> Headroom:
    """Ask the upstream (its own credentials, if any) with a manifest HEAD; never raises."""
    api = RegistryAPI(upstream.remote_url, username=upstream.username, password=upstream.password,
                      timeout=timeout, retries=1, backoff=0.0)   # the one "retry" carries the token
    try:
        answer = api.request("HEAD", f"/v2/{PROBE_REPOSITORY}/manifests/latest",
                             scope=f"repository:{PROBE_REPOSITORY}:pull",
                             headers={"Accept": ", ".join(MANIFEST_TYPES)})
    except RegistryAPIError as err:
        # Named by its display URL only: a remote URL may carry user:password@.
        reason = f"HTTP {err.status}" if err.status else "no answer"
        return Headroom(None, None, None, error=f"{upstream.display_url}: {reason}")
    return parse_headroom(answer.headers)
