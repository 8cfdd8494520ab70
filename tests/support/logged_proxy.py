"""A pull-through mirror process with its request log on, and TLS and htpasswd when given:
what a client test needs to show that a pull went through the mirror, as which user."""

from __future__ import annotations

import json
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from mirror.config import settings as settings_mod
from mirror.host import credential, tls
from support.configs import write_config
from support.pullthrough import ProxyRegistry
from support.upstream import free_ports

CLIENT_USER = ("alice", "wonder land")   # the htpasswd user clients are given


class LoggedProxy(ProxyRegistry):
    """A pull-through mirror whose access log (its request log) is on; TLS and htpasswd
    when given (the generated server certificate, bcrypt users)."""

    def __init__(self, root, remote_url, *, port=None, cert=None, key=None, ca=None, htpasswd=None, user=None):
        super().__init__(root, remote_url, port)
        self.cert, self.key, self.ca, self.htpasswd, self.user = cert, key, ca, htpasswd, user
        if cert:
            self.url = f"https://{self.host}"

    def _write_config(self) -> None:
        super()._write_config()
        config = json.loads(self.config_path.read_text())
        config["log"] = {"level": "info", "accesslog": {"disabled": False}}
        if self.cert:
            config["http"]["tls"] = {"certificate": self.cert, "key": self.key}
        if self.htpasswd:
            config["auth"] = {"htpasswd": {"realm": "docker-mirror", "path": self.htpasswd}}
        self.config_path.write_text(json.dumps(config))

    def start(self):
        if not self.cert:
            return super().start()
        self._write_config()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen([self.binary, "serve", str(self.config_path)],
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(150):
            try:
                if requests.get(f"{self.url}/v2/", verify=self.ca, auth=self.user, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"TLS mirror did not answer:\n{self.log_tail()}")

    def requests_for(self, path: str) -> list[str]:
        """Access-log lines of requests for `path` (a /v2/... path)."""
        return [line for line in self.log_path.read_text(errors="replace").splitlines()
                if f"GET {path}" in line or f"HEAD {path}" in line]


@contextmanager
def tls_htpasswd_mirror(root: Path, upstream, mirrored):
    """One mirror of `upstream` over TLS (the CA and server certificate the product
    generates) behind htpasswd, whose user CLIENT_USER is the client user of the settings:
    yields (settings, the running LoggedProxy). `mirrored(port)`: the .config symbols naming
    the upstream's registry on that port (e.g. DOCKER_MIRROR_QUAY=True, ..._QUAY_PORT=port)."""
    user, password = CLIENT_USER
    users = root / "htpasswd"
    users.write_text(f"{user}:{credential._bcrypt(password)}\n")
    hub_port, port = free_ports(2)
    config = write_config(root / ".config", olddefconfig=True, DOCKER_MIRROR_PATH=str(root / "mirror"),
                          DOCKER_MIRROR_PORT=hub_port, DOCKER_MIRROR_TLS=True, **mirrored(port),
                          DOCKER_MIRROR_HTPASSWD=True, DOCKER_MIRROR_HTPASSWD_PATH=str(users),
                          DOCKER_MIRROR_CLIENT_USERNAME=user, DOCKER_MIRROR_CLIENT_PASSWORD=password)
    settings = settings_mod.load(config)
    tls.ensure(settings)
    tls_dir = Path(settings.path) / "tls"
    mirror = LoggedProxy(root / "m", upstream.url, port=port, cert=str(tls_dir / "server.crt"),
                         key=str(tls_dir / "server.key"), ca=settings.tls_ca, htpasswd=str(users),
                         user=CLIENT_USER).start()
    try:
        yield settings, mirror
    finally:
        mirror.stop()
