"""The platform's key pair for owner identity sent by gateways, and opening what they encrypted to it.

R-6.1.3b/c: a gateway removes the owner's identifiers from a dataset and carries them in a PS3.15
Encrypted Attributes Sequence (0400,0500): a CMS EnvelopedData (RSA key transport, AES-256-CBC
content encryption) whose content is a DICOM data set (Explicit VR Little Endian) holding one Modified
Attributes Sequence (0400,0550) item with the original values. Only the platform can open it.

The key pair is made on first use under DATA_DIR/keys (0600, like the master key); the gateway is
handed a self-signed X.509 certificate for the public key, because CMS names its recipient by
issuer and serial number.
"""

from __future__ import annotations

import datetime
import functools
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from django.conf import settings
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.uid import ExplicitVRLittleEndian

from vetpacs.core.errors import Errors, VetpacsError

KEY_FILE = "platform-envelope.pem"
RSA_BITS = 3072
CERTIFICATE_YEARS = 30
ENCRYPTED_ATTRIBUTES = 0x04000500


def _key_path() -> Path:
    return Path(settings.DATA_DIR) / "keys" / KEY_FILE


def _generate() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vetpacs"),
            x509.NameAttribute(NameOID.COMMON_NAME, "vetpacs platform identity envelope"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365 * CERTIFICATE_YEARS))
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + cert.public_bytes(serialization.Encoding.PEM)


def _load_or_create() -> bytes:
    path = _key_path()
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = _generate()
    # Written whole under a temporary name, then linked: two processes starting together keep one pair.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".envelope-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return path.read_bytes()


@functools.cache
def _pair() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    pem = _load_or_create()
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("the platform envelope key must be RSA")
    return key, x509.load_pem_x509_certificate(pem)


def platform_public_key_pem() -> bytes:
    """What a gateway encrypts to: the self-signed certificate (PEM) carrying the platform's public key."""
    return _pair()[1].public_bytes(serialization.Encoding.PEM)


def der_exact(data: bytes) -> bytes:
    """The DER value without what follows it: an OB value is padded to even length (PS3.5 7.1.1)."""
    if len(data) < 2 or data[0] != 0x30:
        return data
    first = data[1]
    if first < 0x80:
        return data[: 2 + first]
    n = first & 0x7F
    if n == 0 or n > 4 or len(data) < 2 + n:
        return data
    return data[: 2 + n + int.from_bytes(data[2 : 2 + n], "big")]


def decrypt(enveloped_der: bytes) -> bytes:
    key, cert = _pair()
    try:
        return pkcs7.pkcs7_decrypt_der(der_exact(enveloped_der), cert, key, [])
    except ValueError as exc:
        raise VetpacsError(
            Errors.ENCRYPTED_ATTRIBUTES_UNREADABLE,
            f"the Encrypted Attributes Sequence cannot be opened with this platform's key: {exc}",
        ) from None


def _bare_dataset(data: bytes) -> Dataset:
    return read_dataset(DicomBytesIO(data), is_implicit_VR=False, is_little_endian=True)


def open_encrypted_attributes(ds: Dataset) -> Dataset | None:
    """The original attributes a gateway encrypted into ds, or None when ds carries none.

    Raises VetpacsError when an item cannot be opened: an upload whose owner cannot be restored is
    refused rather than stored without its owner.
    """
    if ENCRYPTED_ATTRIBUTES not in ds:
        return None
    originals = Dataset()
    for item in ds[ENCRYPTED_ATTRIBUTES].value:
        syntax = str(item.get("EncryptedContentTransferSyntaxUID") or "")
        if syntax != ExplicitVRLittleEndian:
            raise VetpacsError(
                Errors.ENCRYPTED_ATTRIBUTES_UNREADABLE,
                f"Encrypted Content Transfer Syntax UID {syntax!r} is not Explicit VR Little Endian",
            )
        try:
            inner = _bare_dataset(decrypt(bytes(item.EncryptedContent)))
            modified = inner.ModifiedAttributesSequence[0]
        except (AttributeError, IndexError, ValueError, EOFError, KeyError) as exc:
            raise VetpacsError(
                Errors.ENCRYPTED_ATTRIBUTES_UNREADABLE,
                f"the decrypted content is not a Modified Attributes Sequence: {exc}",
            ) from None
        for elem in modified:
            originals[elem.tag] = elem
    return originals


def restore_encrypted_attributes(ds: Dataset) -> bool:
    """Put the encrypted originals back into ds and drop the sequence; True if ds carried one."""
    originals = open_encrypted_attributes(ds)
    if originals is None:
        return False
    for elem in originals:
        ds[elem.tag] = elem
    del ds[ENCRYPTED_ATTRIBUTES]
    return True
