"""A real Azure Blob service for the azure backend's tests: Azurite's `azurite-blob` on loopback.

Azurite comes from the npm registry (scripts/install-deps.sh installs it
under .tools/). It runs on a free loopback port with a temporary workspace,
knows one account (the name and key given) and serves HTTPS with a
throwaway CA's certificate for `<account>.blob.localhost`: the host name
distribution 2.8's driver builds from the account and the realm
(`https://<account>.blob.<realm>`, realm `localhost:<port>`), which Azurite
serves as a production-style URL. Requests are signed with the account key
(Shared Key), as the driver signs them; any other key is refused.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mirror.config.kconfig import ROOT
from support.upstream import free_port

AZURITE_BLOB = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
API_VERSION = "2019-12-12"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def throwaway_ca_and_cert(directory: Path, host: str) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signs for `host` alone (a name or an IP address):
    (ca.pem, cert.pem, key.pem)."""
    try:
        alt_name = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt_name = x509.DNSName(host)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("dmtest azurite CA"))
          .issuer_name(_name("dmtest azurite CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([alt_name]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


def shared_key_headers(account: str, key: str, method: str, url: str, body: bytes = b"",
                       headers: dict | None = None) -> dict:
    """Headers of a request signed with the account key (Azure Storage's Shared Key scheme)."""
    headers = {"x-ms-date": datetime.datetime.now(datetime.timezone.utc)
               .strftime("%a, %d %b %Y %H:%M:%S GMT"), "x-ms-version": API_VERSION,
               **(headers or {})}
    if body:
        headers["Content-Length"] = str(len(body))
    lower = {k.lower(): v for k, v in headers.items()}
    standard = ["content-encoding", "content-language", "content-length", "content-md5",
                "content-type", "date", "if-modified-since", "if-match", "if-none-match",
                "if-unmodified-since", "range"]
    parts = urlsplit(url)
    resource = f"/{account}{parts.path or '/'}"
    for name, value in sorted((k.lower(), v) for k, v in parse_qsl(parts.query)):
        resource += f"\n{name}:{value}"
    to_sign = "\n".join([method, *(lower.get(h, "") for h in standard)]) + "\n"
    to_sign += "".join(f"{k}:{v.strip()}\n" for k, v in sorted(lower.items()) if k.startswith("x-ms-"))
    to_sign += resource
    digest = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
    return {**headers, "Authorization": f"SharedKey {account}:{base64.b64encode(digest).decode()}"}


class Azurite:
    def __init__(self, root: Path, account: str, key: str):
        self.root, self.account, self.key = Path(root), account, key
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def realm(self) -> str:
        """DOCKER_MIRROR_AZURE_REALM that points the driver here."""
        return f"localhost:{self.port}"

    @property
    def host(self) -> str:
        return f"{self.account}.blob.localhost"

    def start(self, timeout: float = 60) -> "Azurite":
        self.ca, cert, key = throwaway_ca_and_cert(self.root / "tls", self.host)
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        self.log = open(self.root / "azurite.log", "wb")
        self.proc = subprocess.Popen(
            [str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
             "--location", str(self.root / "data"), "--cert", str(cert), "--key", str(key),
             "--loose", "--skipApiVersionCheck", "--disableTelemetry"],
            env={**os.environ, "AZURITE_ACCOUNTS": f"{self.account}:{self.key}"},
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        # Verified against the name the driver dials, though connected to 127.0.0.1:
        # *.localhost names do not resolve here without an /etc/hosts line.
        self.pool = urllib3.HTTPSConnectionPool(
            "127.0.0.1", self.port, ca_certs=str(self.ca), cert_reqs="CERT_REQUIRED",
            server_hostname=self.host, assert_hostname=self.host, retries=False, timeout=10)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"azurite-blob exited {self.proc.returncode}: {self.log_text()}")
            try:
                self.request("GET", "/?comp=list")
                return self
            except (urllib3.exceptions.HTTPError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"azurite-blob did not answer: {self.log_text()}")
                time.sleep(0.2)

    def log_text(self) -> str:
        return (self.root / "azurite.log").read_text(errors="replace")[-2000:]

    def request(self, method: str, path: str, body: bytes = b"", key: str | None = None,
                headers: dict | None = None) -> urllib3.BaseHTTPResponse:
        """A Shared Key request to https://<account>.blob.localhost:<port><path>."""
        url = f"https://{self.host}:{self.port}{path}"
        signed = shared_key_headers(self.account, key or self.key, method, url, body, headers)
        signed["Host"] = f"{self.host}:{self.port}"
        return self.pool.request(method, path, body=body or None, headers=signed)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc:
            self.log.close()

    def __enter__(self) -> "Azurite":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
