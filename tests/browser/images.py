"""Synthetic images the browser tests measure on: what is where is known to the pixel."""

from __future__ import annotations

import numpy as np
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import JPEGLSLossless, generate_uid

from tests.builders.dicom import image

CALIBRATION_STUDY = generate_uid(entropy_srcs=["vetpacs-browser", "calibration"])
PRIOR_STUDY = generate_uid(entropy_srcs=["vetpacs-browser", "prior"])
SIZE = 200
SPACING_MM = 0.5
# Two bright markers on row 100, at columns 50 and 150: 100 pixels apart, 50 mm at 0.5 mm per pixel.
MARKERS = ((100, 50), (100, 150))
MARKER_DISTANCE_MM = (MARKERS[1][1] - MARKERS[0][1]) * SPACING_MM
ANIMAL = {
    "animal": "标尺", "owner": "测试", "patient_id": "BROWSER-RULER", "species": "Canine", "breed": "Beagle",
}  # fmt: skip


def _pixels() -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    arr = (600 + 4 * xx + 2 * yy).astype(np.uint16)  # a gentle gradient: never a blank canvas
    for r, c in MARKERS:
        arr[r - 2 : r + 3, c - 2 : c + 3] = 4000
    return arr


def calibration_radiograph() -> Dataset:
    ds = image(
        study_uid=CALIBRATION_STUDY,
        pixels=_pixels(),
        modality="DX",
        StudyDate=timezone.localdate().strftime("%Y%m%d"),  # the worklist's "today" (the server's zone)
        StudyTime="120000",
        StudyDescription="Ruler 标尺",
        AccessionNumber="BR-RULER",
        **ANIMAL,
    )
    ds.PixelSpacing = [SPACING_MM, SPACING_MM]
    ds.ImagerPixelSpacing = [SPACING_MM, SPACING_MM]
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    # Stored as it arrives: JPEG-LS Lossless, so the browser must decode it.
    ds.compress(JPEGLSLossless)
    return ds


def prior_thorax() -> Dataset:
    """An earlier study of the same animal, to compare side by side."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    arr = (800 + 6 * np.hypot(xx - 100, yy - 100)).astype(np.uint16)
    ds = image(
        study_uid=PRIOR_STUDY,
        pixels=arr,
        modality="DX",
        StudyDate="20250601",
        StudyTime="090000",
        StudyDescription="Prior thorax 既往胸片",
        AccessionNumber="BR-PRIOR",
        **ANIMAL,
    )
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    return ds
