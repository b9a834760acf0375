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


# A study of its own clinic (so the demo clinic's worklist counts stay as they are): a stack of
# STACK_IMAGES images in series 1, and in series 2 one image without any pixel spacing whose two
# markers are UNCALIBRATED_MARKER_PX pixels apart.
VIEWER_CLINIC = "看图测试医院 Viewer Test Clinic"
VIEWER_STUDY = generate_uid(entropy_srcs=["vetpacs-browser", "viewer"])
STACK_IMAGES = 5
UNCALIBRATED_MARKER_PX = MARKERS[1][1] - MARKERS[0][1]


def viewer_study() -> list[Dataset]:
    series_uid = generate_uid(entropy_srcs=["vetpacs-browser", "viewer", "stack"])
    common = {
        "study_uid": VIEWER_STUDY, "modality": "CT", "StudyDate": "20251110", "StudyTime": "150000",
        "StudyDescription": "Stack 序列", "AccessionNumber": "BR-VIEWER", "animal": "翻页", "owner": "测试",
        "patient_id": "BROWSER-STACK", "species": "Feline", "breed": "Ragdoll",
    }  # fmt: skip
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    out = []
    for n in range(1, STACK_IMAGES + 1):
        # Each image's bright square sits further right: a different picture on every page.
        arr = (500 + 3 * yy).astype(np.uint16)
        arr[80:120, 20 + 30 * n : 50 + 30 * n] = 3500
        ds = image(series_uid=series_uid, pixels=arr, SeriesNumber=1, InstanceNumber=n, **common)
        ds.SeriesDescription = "Axial 横断"
        ds.ImagePositionPatient = [0, 0, 2.0 * n]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness = 2.0
        ds.WindowCenter, ds.WindowWidth = 2000, 4000
        out.append(ds)
    flat = _pixels()
    ds = image(
        series_uid=generate_uid(entropy_srcs=["vetpacs-browser", "viewer", "photo"]),
        pixels=flat, SeriesNumber=2, InstanceNumber=1, **{**common, "modality": "DX"},
    )  # fmt: skip
    ds.SeriesDescription = "No spacing 无间距"
    del ds.PixelSpacing  # neither PixelSpacing nor ImagerPixelSpacing: lengths need a calibration
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    out.append(ds)
    return out
