"""A real Azure Blob service for the azure backend's tests: Azurite's `azurite-blob` on loopback.

Azurite comes from the npm registry (scripts/install-deps.sh installs it
under .tools/). It runs on a free loopback port with a temporary workspace,
knows one account (the name and key given) and serves HTTPS with a
throwaway CA's certificate for `<account>.blob.localhost`: the host name
distribution 2.8's driver builds from the account and the realm
(`https://<account>.blob.<realm>`, realm `localhost:<port>`), which Azurite
serves as a production-style URL. Requests are signed with the account key
(Shared Key) by Azure's SDK (azure-storage-blob), as the driver signs them;
any other key is refused. That name resolves through an /etc/hosts line of the
test's own (service()), added before Azurite starts: nothing here resolves
`*.localhost` by itself, and a test must never ask the machine's DNS server.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import requests
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.core.pipeline import Pipeline
from azure.core.pipeline.transport import HttpRequest, RequestsTransport
from azure.storage.blob import BlobServiceClient
# The SDK's own Shared Key signer (not its public API), for raw requests: a test reads the
# service's answer as sent (status, error body), which the SDK's operations raise instead.
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mirror.config.kconfig import ROOT
from mirror.net.azure_blob import API_VERSION
from support import hosts_file
from support.upstream import free_port

AZURITE_BLOB = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"


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


@dataclass(frozen=True)
class Answer:
    """The service's answer to a raw request."""
    status: int
    data: bytes


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

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

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
        # Verified against the name the driver dials, with this CA alone; loopback only: no
        # proxy from the environment. The SDK's client and raw requests share the session.
        self.session = requests.Session()
        self.session.trust_env = False
        transport = dict(session=self.session, session_owner=False, connection_verify=str(self.ca),
                         connection_timeout=10, read_timeout=10)
        self.transport = RequestsTransport(**transport)
        self.client = BlobServiceClient(
            self.url, credential={"account_name": self.account, "account_key": self.key},
            api_version=API_VERSION, retry_total=0, **transport)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"azurite-blob exited {self.proc.returncode}: {self.log_text()}")
            try:
                self.containers()
                return self
            except AzureError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"azurite-blob did not answer: {self.log_text()}")
                time.sleep(0.2)

    def log_text(self) -> str:
        return (self.root / "azurite.log").read_text(errors="replace")[-2000:]

    def request(self, method: str, path: str, body: bytes = b"", key: str | None = None,
                headers: dict | None = None) -> Answer:
        """A request to https://<account>.blob.localhost:<port><path> (`path` as sent), signed
        with the account key or `key` (Shared Key)."""
        request = HttpRequest(method, self.url + path, headers={
            "x-ms-date": formatdate(usegmt=True), "x-ms-version": API_VERSION, **(headers or {})})
        if body:
            request.set_bytes_body(body)
        signed = Pipeline(self.transport, [SharedKeyCredentialPolicy(self.account, key or self.key)])
        answer = signed.run(request).http_response
        return Answer(answer.status_code, answer.body())

    def list(self, container: str, prefix: str = "") -> list[str]:
        """The names of the container's blobs (under `prefix`); [] when there is no container."""
        try:
            return [blob.name for blob in
                    self.client.get_container_client(container).list_blobs(name_starts_with=prefix or None)]
        except ResourceNotFoundError:
            return []

    def containers(self) -> list[str]:
        return [container.name for container in self.client.list_containers()]

    def read(self, container: str, name: str) -> bytes | None:
        """A blob's bytes, None when there is none."""
        try:
            return self.client.get_blob_client(container, name).download_blob().readall()
        except ResourceNotFoundError:
            return None

    def mirror_settings(self, container: str, **more) -> dict:
        """The .config symbols of a mirror on this service, trusting its CA."""
        return dict(DOCKER_MIRROR_STORAGE_FILESYSTEM=False, DOCKER_MIRROR_STORAGE_AZURE=True,
                    DOCKER_MIRROR_AZURE_ACCOUNT_NAME=self.account, DOCKER_MIRROR_AZURE_ACCOUNT_KEY=self.key,
                    DOCKER_MIRROR_AZURE_REALM=self.realm, DOCKER_MIRROR_AZURE_CONTAINER=container,
                    DOCKER_MIRROR_STORAGE_CA_BUNDLE=str(self.ca), **more)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc:
            if hasattr(self, "session"):
                self.session.close()
            self.log.close()

    def __enter__(self) -> "Azurite":
        try:
            return self.start()
        except BaseException:
            self.stop()   # an Azurite that never answered is not left running
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def new_account() -> tuple[str, str]:
    """An account name of this test's own (its /etc/hosts line is its own too) and a key."""
    return f"dmaz{uuid.uuid4().hex[:12]}", base64.b64encode(os.urandom(32)).decode()


@contextmanager
def service(root: Path, account: str | None = None, key: str | None = None):
    """Azurite for a new account, whose blob host resolves to 127.0.0.1 (/etc/hosts) meanwhile:
    for the registry containers (started after this) as for this host's tools and the SDK."""
    if account is None:
        account, key = new_account()
    azurite = Azurite(root, account, key)
    with hosts_file.resolving(azurite.host), azurite:
        yield azurite
