"""A throwaway self-signed certificate for 127.0.0.1/localhost (the SDK only speaks https)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_cert(directory: Path) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem``; the cert is its own CA, so pass it as ``ca_certs``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def sdk_env(host: str, cert: Path) -> dict[str, str]:
    """Environment that points an unchanged ``dropbox`` SDK at one emulator (set before ``import dropbox``).

    ``REQUESTS_CA_BUNDLE`` is set too because requests lets that variable override the SDK's ``ca_certs``.
    """
    return {
        "DROPBOX_API_HOST": host,
        "DROPBOX_API_CONTENT_HOST": host,
        "DROPBOX_API_NOTIFY_HOST": host,
        "DROPBOX_WEB_HOST": host,
        "REQUESTS_CA_BUNDLE": str(cert),
    }
