"""Certificates made at test time (with ``cryptography``): a CA, a server
certificate for localhost / 127.0.0.1 / ::1 signed by it, a client
certificate, an expired server certificate and an unrelated CA, written as
PEM files."""

import datetime
import ipaddress
import uuid
from pathlib import Path
from typing import Dict

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(ca_cert, ca_key, cn: str, server: bool, expired: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    if expired:
        start, end = now - datetime.timedelta(days=730), now - datetime.timedelta(days=365)
    else:
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    if server:
        san = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
        eku = [ExtendedKeyUsageOID.SERVER_AUTH]
    else:
        san = [x509.DNSName(cn)]
        eku = [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def make_pki(directory: Path) -> Dict[str, str]:
    """Writes the PEM files into ``directory`` and returns their paths by
    name: ca, other_ca, server_cert, server_key, expired_cert, expired_key,
    client_cert, client_key."""
    tag = uuid.uuid4().hex[:8]
    ca_cert, ca_key = _ca("pyrpc test CA " + tag)
    other_cert, _ = _ca("some other CA " + tag)
    server = _leaf(ca_cert, ca_key, "localhost", server=True)
    expired = _leaf(ca_cert, ca_key, "localhost", server=True, expired=True)
    client = _leaf(ca_cert, ca_key, "pyrpc-test-client", server=False)
    files = {
        "ca": _cert_pem(ca_cert),
        "other_ca": _cert_pem(other_cert),
        "server_cert": _cert_pem(server[0]),
        "server_key": _key_pem(server[1]),
        "expired_cert": _cert_pem(expired[0]),
        "expired_key": _key_pem(expired[1]),
        "client_cert": _cert_pem(client[0]),
        "client_key": _key_pem(client[1]),
    }
    paths = {}
    for name, data in files.items():
        path = directory / (name + ".pem")
        path.write_bytes(data)
        paths[name] = str(path)
    return paths
