"""DOCKER_MIRROR_STORAGE_CA_BUNDLE: CA certificates the registry trusts for its object store.

An s3 endpoint or an Azure blob host behind a private CA (an emulator such
as Azurite, an on-premises store) is refused by the registry's TLS check
("x509: certificate signed by unknown authority") unless the container
trusts that CA. The file is checked here, once, so that a wrong path or a
file without a certificate is a ConfigError naming the symbol, not a
registry that fails on its first pull. (AWS_CA_BUNDLE is no way to do it:
distribution panics at start when it cannot load the file it names.)
"""

from __future__ import annotations

from cryptography import x509

from .reader import Reader

SYMBOL = "DOCKER_MIRROR_STORAGE_CA_BUNDLE"
MAX_BYTES = 4 * 1024 * 1024  # the system's own bundle is about 200 kB


def read_ca_bundle(read: Reader) -> str:
    """The checked path of the CA bundle, or "" when none is set."""
    path = read.path(SYMBOL, required=False)
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as err:
        read.fail(SYMBOL, path, f"must be a readable PEM file of CA certificates ({err.strerror})")
    if len(data) > MAX_BYTES:
        read.fail(SYMBOL, path, f"must be a PEM file of CA certificates of at most {MAX_BYTES} bytes")
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        read.fail(SYMBOL, path, "must be a PEM file of CA certificates "
                  "(-----BEGIN CERTIFICATE----- blocks); none could be read from it")
    return path
