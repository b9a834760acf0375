"""Stills, PDFs and clips become DICOM that DCMTK's dcmdump and dicom3tools' dciodvfy accept."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from vetpacs.gateway.convert import ConversionError, convert_file
from vetpacs.gateway.convert.cli import add_convert
from vetpacs.gateway.convert.pdf import pdf_bytes

SIDECAR = {
    "patient_id": "P-88",
    "patient_name": "张^咪咪",
    "species": "Feline",
    "breed": "British Shorthair",
    "owner": "张^三",
    "accession_number": "ACC-1",
    "referring_physician_name": "Li^Ming",
}
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R 4 0 R]/Count 2>>"
    b"endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"4 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _check_with_dicom_tools(ds, tmp_path: Path) -> Path:
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    dump = subprocess.run(["dcmdump", str(path)], capture_output=True, text=True, check=False)
    assert dump.returncode == 0 and "E:" not in dump.stderr, dump.stderr
    verify = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    errors = [line for line in (verify.stdout + verify.stderr).splitlines() if line.startswith("Error")]
    assert errors == [], "\n".join(errors)
    return path


def _video(path: Path, codec: str, frames: int = 8) -> list[np.ndarray]:
    import av

    out = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            rgb = np.full((48, 64, 3), i * 25, np.uint8)
            out.append(rgb)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


@pytest.mark.requirement("R-6.1.1c")
def test_colour_png_becomes_rgb_secondary_capture_with_the_same_pixels(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "wound.png")
    (ds,) = convert_file(tmp_path / "wound.png", sidecar=SIDECAR)
    path = _check_with_dicom_tools(ds, tmp_path)
    back = pydicom.dcmread(path)
    assert back.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert back.PhotometricInterpretation == "RGB"
    assert np.array_equal(back.pixel_array, rgb)
    assert back.PatientID == "P-88" and str(back.PatientName) == "张^咪咪"
    assert back.PatientSpeciesDescription == "Feline" and str(back.ResponsiblePerson) == "张^三"


@pytest.mark.requirement("R-7.5b")
def test_grey_png_16_bit_becomes_monochrome2(tmp_path):
    grey = np.random.default_rng(2).integers(0, 65536, (20, 25), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "scan.png")
    (ds,) = convert_file(tmp_path / "scan.png", sidecar=SIDECAR)
    back = pydicom.dcmread(_check_with_dicom_tools(ds, tmp_path))
    assert back.PhotometricInterpretation == "MONOCHROME2" and back.BitsStored == 16
    assert np.array_equal(back.pixel_array, grey)


def test_jpeg_is_marked_as_once_lossy_and_keeps_its_decoded_pixels(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=90)
    (ds,) = convert_file(tmp_path / "photo.jpg", sidecar=SIDECAR)
    back = pydicom.dcmread(_check_with_dicom_tools(ds, tmp_path))
    assert back.LossyImageCompression == "01"
    assert np.array_equal(back.pixel_array, np.asarray(Image.open(tmp_path / "photo.jpg").convert("RGB")))


@pytest.mark.requirement("R-6.1.1c")
def test_multi_page_pdf_round_trips_byte_for_byte(tmp_path):
    (tmp_path / "ecg.pdf").write_bytes(PDF)
    (ds,) = convert_file(tmp_path / "ecg.pdf", sidecar=SIDECAR)
    back = pydicom.dcmread(_check_with_dicom_tools(ds, tmp_path))
    assert back.SOPClassUID == pydicom.uid.EncapsulatedPDFStorage
    assert pdf_bytes(back) == PDF and back.MIMETypeOfEncapsulatedDocument == "application/pdf"


@pytest.mark.requirement("R-7.5b")
def test_h264_clip_is_encapsulated_unchanged_as_video_photographic(tmp_path):
    _video(tmp_path / "echo.mp4", "libx264")
    (ds,) = convert_file(tmp_path / "echo.mp4", sidecar=SIDECAR)
    back = pydicom.dcmread(_check_with_dicom_tools(ds, tmp_path))
    assert back.SOPClassUID == pydicom.uid.VideoPhotographicImageStorage
    assert back.file_meta.TransferSyntaxUID == pydicom.uid.MPEG4HP41
    assert int(back.NumberOfFrames) == 8 and back.Rows == 48 and back.Columns == 64
    stream = b"".join(pydicom.encaps.generate_fragments(back.PixelData))
    assert stream.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01"))  # an Annex B byte stream


def test_clip_in_another_codec_becomes_multiframe_true_colour_sc(tmp_path):
    sources = _video(tmp_path / "endo.mp4", "mpeg4")
    (ds,) = convert_file(tmp_path / "endo.mp4", sidecar=SIDECAR)
    back = pydicom.dcmread(_check_with_dicom_tools(ds, tmp_path))
    assert back.SOPClassUID == pydicom.uid.MultiFrameTrueColorSecondaryCaptureImageStorage
    assert int(back.NumberOfFrames) == len(sources)
    # flat frames survive MPEG-4 within a grey level or two
    assert abs(int(back.pixel_array[3].mean()) - int(sources[3].mean())) <= 3


def test_a_file_that_is_not_an_image_pdf_or_clip_is_refused_by_content(tmp_path):
    (tmp_path / "fake.jpg").write_text("hello")
    with pytest.raises(ConversionError, match="不支持"):
        convert_file(tmp_path / "fake.jpg", sidecar=SIDECAR)


def test_missing_patient_id_is_named(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    with pytest.raises(ConversionError, match="patient_id"):
        convert_file(tmp_path / "a.png", sidecar={"species": "Canine"})


def test_truncated_pdf_is_refused(tmp_path):
    (tmp_path / "cut.pdf").write_bytes(PDF[:60])
    with pytest.raises(ConversionError, match="truncated"):
        convert_file(tmp_path / "cut.pdf", sidecar=SIDECAR)


def test_convert_command_takes_the_sidecar_and_the_flags(tmp_path, capsys):
    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "leg.png")
    (tmp_path / "leg.png.json").write_text('{"patient_id": "FROM-SIDECAR", "breed": "Corgi"}')
    parser = argparse.ArgumentParser()
    add_convert(parser.add_subparsers())
    args = parser.parse_args(
        [
            "convert",
            str(tmp_path / "leg.png"),
            "--patient-id",
            "P-CLI",
            "--species",
            "Canine",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert args.func(args) == 0
    (out,) = (tmp_path / "o").glob("*.dcm")
    ds = pydicom.dcmread(out)
    assert ds.PatientID == "P-CLI" and ds.PatientBreedDescription == "Corgi"
