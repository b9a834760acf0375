"""Identity protection before upload (R-6.1.3b/c): the owner leaves the clinic only encrypted.

The owner's identifiers (the attributes `vetpacs.dicom.identity` names, and the owner's part of
Patient's Name) are taken out of the dataset and carried in a PS3.15 Encrypted Attributes Sequence
(0400,0500): a CMS EnvelopedData (RFC 5652; RSA key transport to the platform's certificate,
AES-256-CBC content encryption, `cryptography`'s pkcs7 module) whose content is a data set in
Explicit VR Little Endian holding one Modified Attributes Sequence (0400,0550) item with the
original values (PS3.15 E.1.1, PS3.3 C.12.1.1.4.1). What goes on the wire and into the platform's
blob store never holds the owner in clear; only the platform's private key opens it.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian

from vetpacs.dicom.identity import split_identity

# What stands in the dataset for the owner until the platform restores it.
PLACEHOLDER = "PROTECTED"


class ProtectionError(ValueError):
    """The platform's certificate is missing or unusable: nothing may be uploaded unprotected."""


def load_recipient(pem: bytes) -> x509.Certificate:
    """The platform's certificate (what enrolment stored as platform_public_key_pem)."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ProtectionError(
            "platform_public_key_pem is not an X.509 certificate in PEM; enrol the gateway again"
        ) from exc


def _bare(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    return fp.getvalue()


def encrypt_to(recipient: x509.Certificate, data: bytes) -> bytes:
    builder = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(data)
        .add_recipient(recipient)
        .set_content_encryption_algorithm(algorithms.AES256)
    )
    return builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def protect_identity(ds: Dataset, recipient: x509.Certificate) -> list[str]:
    """Move the owner's identifiers into an Encrypted Attributes Sequence; the keywords moved.

    Nothing identifying present: ds is unchanged and the list is empty.
    """
    originals = split_identity(ds, PLACEHOLDER)
    if not originals:
        return []
    modified = Dataset.from_json(originals)
    inner = Dataset()
    # The originals are text already decoded; UTF-8 carries any of them (PS3.5 6.1.2.5.3).
    inner.SpecificCharacterSet = "ISO_IR 192"
    inner.ModifiedAttributesSequence = [modified]
    item = Dataset()
    item.EncryptedContentTransferSyntaxUID = ExplicitVRLittleEndian
    item.EncryptedContent = encrypt_to(recipient, _bare(inner))
    ds.EncryptedAttributesSequence = [item]
    return sorted(e.keyword for e in modified)
