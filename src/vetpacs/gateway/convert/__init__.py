"""Non-DICOM files made DICOM (R-6.1.1c, R-7.5b): stills, PDFs and video clips, attributes from a sidecar.

`convert_file(path, sidecar=...)` picks the converter by the file's content (its magic bytes), not by
its name, and returns the datasets to queue: one per still or PDF, one per video clip.
"""

from __future__ import annotations

from pathlib import Path

from pydicom import Dataset

from vetpacs.gateway.convert.attributes import ConversionError, StudyAttributes, read_sidecar
from vetpacs.gateway.convert.pdf import convert_pdf
from vetpacs.gateway.convert.still import convert_still
from vetpacs.gateway.convert.video import convert_video

__all__ = ["ConversionError", "StudyAttributes", "convert_file", "kind_of", "read_sidecar"]

_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"
_PDF = b"%PDF-"


def kind_of(path: Path) -> str | None:
    """'still', 'pdf', 'video' or None, from the first bytes of the file."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith((_JPEG, _PNG)):
        return "still"
    if head.startswith(_PDF):
        return "pdf"
    # ISO base media file format (MP4, MOV, M4V): a box of type 'ftyp' comes first.
    if head[4:8] == b"ftyp":
        return "video"
    return None


def convert_file(path: Path, *, sidecar: dict[str, object] | None) -> list[Dataset]:
    """Convert one file; `sidecar` holds patient/study/series attributes (see attributes.py)."""
    path = Path(path)
    attrs = StudyAttributes.from_mapping(sidecar or {})
    kind = kind_of(path)
    if kind == "still":
        return [convert_still(path, attrs)]
    if kind == "pdf":
        return [convert_pdf(path, attrs)]
    if kind == "video":
        return [convert_video(path, attrs)]
    raise ConversionError(
        f"{path.name}: not a file the gateway converts (JPEG, PNG, PDF or MP4); 不支持的文件类型"
    )
