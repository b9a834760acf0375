"""Header splicing: a changed header in front of the untouched pixel bytes gives a valid, equal file."""

import io

import numpy as np
import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian, JPEGLSLossless

from tests.builders import dicom as build
from vetpacs.dicom import splice


@pytest.mark.parametrize("syntax", ["explicit", "implicit", "jpeg-ls"])
def test_a_spliced_file_has_the_new_header_and_the_same_pixels(syntax):
    ds = build.image(rows=40, columns=30, owner="王小明", animal="旺财")
    if syntax == "implicit":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif syntax == "jpeg-ls":
        ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls", generate_instance_uid=False)
    original = build.to_bytes(ds)
    header = splice.read_header(io.BytesIO(original))
    assert splice.can_splice(header.ds)
    header.ds.PatientName = "ANON1234^旺财"
    header.ds.ResponsiblePerson = "ANON1234"
    out = io.BytesIO()
    splice.write_spliced(header, io.BytesIO(original), out)
    got = pydicom.dcmread(io.BytesIO(out.getvalue()))
    assert str(got.PatientName) == "ANON1234^旺财" and str(got.ResponsiblePerson) == "ANON1234"
    assert np.array_equal(got.pixel_array, pydicom.dcmread(io.BytesIO(original)).pixel_array)
    assert got.SOPInstanceUID == ds.SOPInstanceUID
    assert b"".join(splice.iter_spliced(header, io.BytesIO(original))) == out.getvalue()


def test_a_file_without_pixel_data_splices_to_its_header():
    ds = build.image()
    del ds.PixelData
    data = build.to_bytes(ds)
    header = splice.read_header(io.BytesIO(data))
    assert header.pixel_offset == len(data)
