"""The generated CA and server certificate, on disk (DOCKER_MIRROR_TLS_GENERATE).

    {path}/tls/ca.crt       the CA clients trust (certs.d, hosts.toml, the fleet)
    {path}/tls/ca.key       its key, 0600: it never leaves this host
    {path}/tls/server.crt   the mirror's certificate, then the CA's (the chain the
                            registry serves, and the anchor the product's own calls pin)
    {path}/tls/server.key   its key, 0600

The CA is made once and never replaced while its two files exist. The server
certificate is issued again when the names clients dial change or it nears
its end (mirror.model.tls decides); every setup, keeper check and refresh
calls ensure(), so renewal needs nobody. Keys are EC P-256.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import HostError
from ..model import tls as model
from .files import atomic_write

DIRECTORY = model.DIRECTORY


@dataclass(frozen=True)
class TlsFiles:
    directory: Path

    @classmethod
    def under(cls, mirror_path: str | Path) -> "TlsFiles":
        return cls(Path(mirror_path) / DIRECTORY)

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"


def needed_names(settings) -> tuple[model.Name, ...]:
    return model.server_names(settings.client_address, socket.gethostname(), settings.bind_address)


def ensure(settings, now: datetime | None = None) -> list[str]:
    """Make the CA (once) and the server certificate (when needed); what was done, for the log."""
    if not settings.tls_generate:
        return []
    now = now or datetime.now(timezone.utc)
    paths = TlsFiles.under(settings.path)
    said = []
    try:
        paths.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        ca_cert, ca_key, made = _ca(paths, now)
        if made:
            said.append(f"made a CA for the mirror's certificates: {paths.ca_cert} "
                        "(make docker-mirror-clients gives it to this host's clients)")
        needed = needed_names(settings)
        reason = model.reissue_reason(_issued(paths, ca_cert), needed, now)
        if reason:
            _issue(paths, ca_cert, ca_key, needed, now)
            said.append(f"issued the mirror's certificate {paths.server_cert} ({reason}) for "
                        + ", ".join(map(str, needed)))
        for key in (paths.ca_key, paths.server_key):
            if key.stat().st_mode & 0o077:
                key.chmod(0o600)  # a key left readable by hand or a copy
    except OSError as err:
        raise HostError(f"cannot write the mirror's TLS files in {paths.directory} "
                        f"(CONFIG_DOCKER_MIRROR_TLS_GENERATE): {err.strerror or err}") from None
    return said


def _ca(paths: TlsFiles, now: datetime):
    if paths.ca_cert.exists() or paths.ca_key.exists():
        # Clients trust this CA: it is never replaced, and a half of it is not guessed at.
        try:
            cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
            key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as err:
            raise HostError(f"{paths.ca_cert} and {paths.ca_key} must both be there and readable "
                            f"(the CA clients trust is never made again while one exists): {err}; "
                            "put them back, or remove both to make a new CA (and give it to "
                            "every client again)") from None
        if cert.public_key().public_numbers() != key.public_key().public_numbers():
            raise HostError(f"{paths.ca_key} is not the key of {paths.ca_cert}; put the right pair back, "
                            "or remove both to make a new CA (and give it to every client again)")
        return cert, key, False
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"docker-mirror CA {socket.gethostname()}"[:64])])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))   # a client's clock a little behind
            .not_valid_after(now + timedelta(days=model.CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    # The key first: a CA certificate without its key would stop the next run.
    atomic_write(paths.ca_key, _key_pem(key), mode=0o600)
    atomic_write(paths.ca_cert, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return cert, key, True


def _issued(paths: TlsFiles, ca_cert) -> model.Issued | None:
    try:
        certs = x509.load_pem_x509_certificates(paths.server_cert.read_bytes())
        key = serialization.load_pem_private_key(paths.server_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None   # missing or unreadable: issued again
    leaf = certs[0]
    key_matches = key.public_key().public_numbers() == leaf.public_key().public_numbers()
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    names = [model.Name("dns", n.lower()) for n in sans.get_values_for_type(x509.DNSName)]
    names += [model.Name("ip", str(a)) for a in sans.get_values_for_type(x509.IPAddress)]
    try:
        leaf.verify_directly_issued_by(ca_cert)
        signed = True
    except (ValueError, TypeError, InvalidSignature):
        signed = False
    return model.Issued(tuple(sorted(names)), leaf.not_valid_after_utc, signed, key_matches)


def _issue(paths: TlsFiles, ca_cert, ca_key, names, now: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.IPAddress(ipaddress.ip_address(n.value)) if n.kind == "ip"
            else x509.DNSName(n.value) for n in names]
    first = next((n.value for n in names if n.kind == "dns" and n.value != "localhost"), "localhost")
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first[:64])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(min(now + timedelta(days=model.SERVER_DAYS), ca_cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    # Key before certificate: a reader between the two writes sees an old pair that
    # no longer matches at worst, and the next ensure() issues again (_issued compares them).
    atomic_write(paths.server_key, _key_pem(key), mode=0o600)
    atomic_write(paths.server_cert, cert.public_bytes(pem) + ca_cert.public_bytes(pem), mode=0o644)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def status(settings, now: datetime | None = None) -> dict | None:
    """What `make docker-mirror-status` says of TLS: None when it is off."""
    if not settings.tls_certificate:
        return None
    now = now or datetime.now(timezone.utc)
    found = {"mode": "generated" if settings.tls_generate else "given",
             "certificate": settings.tls_certificate, "ca": settings.tls_ca,
             "not_after": None, "days_left": None, "names": [], "error": None, "warning": None}
    try:
        leaf = x509.load_pem_x509_certificates(Path(settings.tls_certificate).read_bytes())[0]
    except (OSError, ValueError) as err:
        found["error"] = ("not made yet: 'make docker-mirror' makes it" if found["mode"] == "generated"
                          and isinstance(err, FileNotFoundError) else f"unreadable ({err})")
        return found
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(model.Name.of(str(v))) for v in sans.get_values_for_type(x509.DNSName)]
        names += [str(model.Name.of(str(v))) for v in sans.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    found.update(not_after=f"{leaf.not_valid_after_utc:%Y-%m-%d}", names=sorted(names),
                 days_left=(leaf.not_valid_after_utc - now).days,
                 warning=model.expiry_warning(leaf.not_valid_after_utc, now, settings.tls_generate,
                                              settings.keeper))
    return found
