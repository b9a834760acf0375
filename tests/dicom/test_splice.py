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


@pytest.mark.parametrize("charset", ["ISO_IR 192", "GB18030"])
@pytest.mark.parametrize("syntax", ["explicit", "implicit"])
def test_patching_a_few_elements_equals_rewriting_the_header(syntax, charset):
    """write_changed patches bytes in place; the result must read back as a full rewrite would."""
    from pydicom.dataelem import DataElement

    ds = build.image(
        rows=16, columns=16, owner="王小明", animal="旺财", charset=charset, PatientAddress="北京市朝阳区"
    )
    if syntax == "implicit":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    original = build.to_bytes(ds)
    changes = {
        0x00100010: DataElement(0x00100010, "PN", "ANON77^旺财"),  # replaced
        0x00101040: None,  # removed
        0x00102154: DataElement(0x00102154, "SH", "13800138000"),  # added
        0x00102297: DataElement(0x00102297, "PN", "ANON77"),  # replaced
    }
    patched, rewritten = io.BytesIO(), io.BytesIO()
    splice.write_changed(splice.read_header(io.BytesIO(original)), changes, io.BytesIO(original), patched)
    header = splice.read_header(io.BytesIO(original))
    header.spans.clear()  # no known places: the fallback rewrites the header
    splice.write_changed(header, changes, io.BytesIO(original), rewritten)
    a = pydicom.dcmread(io.BytesIO(patched.getvalue()))
    b = pydicom.dcmread(io.BytesIO(rewritten.getvalue()))
    assert str(a.PatientName) == "ANON77^旺财" and "PatientAddress" not in a
    assert a.PatientTelephoneNumbers == "13800138000"
    assert [(e.tag, e.value) for e in a if e.tag != 0x7FE00010] == [
        (e.tag, e.value) for e in b if e.tag != 0x7FE00010
    ]
    assert np.array_equal(a.pixel_array, b.pixel_array)
    # The patch path was the one taken (the fallback would hide a broken patcher).
    assert splice._patches(splice.read_header(io.BytesIO(original)), changes) is not None


def test_the_changed_stream_reads_exactly_like_the_written_file():
    from pydicom.dataelem import DataElement

    original = build.to_bytes(build.image(rows=300, columns=300, PatientAddress="x"))
    changes = {0x00100010: DataElement(0x00100010, "PN", "ANON^Lucky"), 0x00101040: None}
    written = io.BytesIO()
    splice.write_changed(splice.read_header(io.BytesIO(original)), changes, io.BytesIO(original), written)
    stream = splice.changed_stream(splice.read_header(io.BytesIO(original)), changes, io.BytesIO(original))
    chunks = []
    while chunk := stream.read(7919):  # an odd size crosses every piece boundary
        chunks.append(chunk)
    assert b"".join(chunks) == written.getvalue()
