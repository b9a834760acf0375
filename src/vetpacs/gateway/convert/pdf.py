"""PDF documents (ECG, lab, pathology reports) -> Encapsulated PDF (PS3.3 A.45.1), bytes kept as they are."""

from __future__ import annotations

from pathlib import Path

from pydicom import Dataset
from pydicom.uid import EncapsulatedPDFStorage

from vetpacs.gateway.convert.attributes import ConversionError, StudyAttributes
from vetpacs.gateway.convert.common import CONVERSION_TYPE_WORKSTATION, new_dataset

# An Encapsulated Document's length is a 32-bit value that must be even (PS3.3 C.24.2.1).
MAX_PDF_BYTES = 0xFFFF_FFFE


def convert_pdf(path: Path, attrs: StudyAttributes) -> Dataset:
    data = Path(path).read_bytes()
    if not data.startswith(b"%PDF-"):
        raise ConversionError(f"{path.name}: not a PDF document")
    if b"%%EOF" not in data[-1024:]:
        raise ConversionError(f"{path.name}: the PDF is truncated (no %%EOF at its end); 文件不完整")
    if len(data) > MAX_PDF_BYTES:
        raise ConversionError(f"{path.name}: a PDF larger than 4 GiB cannot be encapsulated")
    ds = new_dataset(sop_class_uid=EncapsulatedPDFStorage)
    attrs.apply(ds, default_modality="DOC")
    ds.ConversionType = CONVERSION_TYPE_WORKSTATION
    ds.BurnedInAnnotation = "YES"  # a report names the patient on its pages
    ds.DocumentTitle = attrs.series_description or Path(path).stem[:64]
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.AcquisitionDateTime = ds.ContentDate + ds.ContentTime
    # PS3.3 C.24.2.1: padded to even length with a trailing NUL; Encapsulated Document Length
    # gives the true length so a reader recovers the PDF byte for byte.
    ds.EncapsulatedDocumentLength = len(data)
    ds.EncapsulatedDocument = data + (b"\x00" if len(data) % 2 else b"")
    return ds


def pdf_bytes(ds: Dataset) -> bytes:
    """The PDF inside an Encapsulated PDF, without its padding."""
    data: bytes = ds.EncapsulatedDocument
    length = ds.get("EncapsulatedDocumentLength")
    return data[: int(length)] if length is not None else data
