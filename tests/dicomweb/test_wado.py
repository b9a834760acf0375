"""WADO-RS as a client sees it: instances, metadata, frames, bulk data, rendered, thumbnails, ZIP."""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from tests.builders import dicom as build
from vetpacs.apps.archive import blobs, services
from vetpacs.apps.archive.models import Instance
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.identity import services as identity
from vetpacs.dicom.identity import restore_identity

EVRLE = str(ExplicitVRLittleEndian)
JLS = str(JPEGLSLossless)
MULTIPART_DICOM = 'multipart/related; type="application/dicom"'


def _parts(response) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/related body into (headers, body) pairs (RFC 2046 5.1.1)."""
    assert response.status_code == 200, response.content if not response.streaming else ""
    ctype = response["Content-Type"]
    assert ctype.startswith("multipart/related"), ctype
    boundary = re.search(r'boundary="?([^";]+)"?', ctype).group(1).encode()
    body = b"".join(response.streaming_content)
    pieces = body.split(b"--" + boundary)
    assert pieces[0] == b"" and pieces[-1] == b"--\r\n"
    out = []
    for piece in pieces[1:-1]:
        assert piece.startswith(b"\r\n") and piece.endswith(b"\r\n")
        head, _, content = piece[2:-2].partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        out.append((headers, content))
    return out


def _datasets(response) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(io.BytesIO(body)) for _, body in _parts(response)]


def _compress(sop_uid: str, django_capture_on_commit_callbacks) -> Instance:
    inst = Instance.objects.get(sop_instance_uid=sop_uid)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.compress(inst.id)
    inst.refresh_from_db()
    assert inst.transfer_syntax_uid == JLS
    return inst


def _url(ds, *tail: str) -> str:
    base = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )
    return "/".join([base, *tail]) if tail else base


def _multiframe(frames: int = 3, rows: int = 16, columns: int = 12) -> tuple[pydicom.Dataset, np.ndarray]:
    pixels = np.random.default_rng(7).integers(0, 4000, (frames, rows, columns), dtype=np.uint16)
    ds = build.image(pixels=pixels[0], modality="OT")
    ds.NumberOfFrames = frames
    ds.PixelData = pixels.tobytes()
    return ds, pixels


def _png(response) -> np.ndarray:
    assert response.status_code == 200, response.content
    return np.asarray(Image.open(io.BytesIO(response.content)))


# --- retrieve instances ------------------------------------------------------------------------------


@pytest.mark.requirement("R-7.5a")
@pytest.mark.requirement("R-6.2.9.2a")
def test_a_study_comes_back_as_multipart_dicom_in_explicit_vr_little_endian_by_default(ingest, clinic_client):
    datasets = build.study(3)
    ingest(*datasets)
    resp = clinic_client.get(f"/dicomweb/studies/{datasets[0].StudyInstanceUID}")
    assert resp["Content-Type"].startswith(MULTIPART_DICOM)
    parts = _parts(resp)
    assert [h["Content-Type"] for h, _ in parts] == [f"application/dicom; transfer-syntax={EVRLE}"] * 3
    received = {str(d.SOPInstanceUID): d for d in (pydicom.dcmread(io.BytesIO(body)) for _, body in parts)}
    for source in datasets:
        got = received[str(source.SOPInstanceUID)]
        assert got.file_meta.TransferSyntaxUID == EVRLE
        assert np.array_equal(got.pixel_array, source.pixel_array)
    assert AuditEvent.objects.filter(action="study.retrieved").count() == 1


def test_series_and_instance_retrieve_only_what_they_name(ingest, clinic_client):
    first, second = build.study(2)
    other_series = build.image(study_uid=first.StudyInstanceUID)
    ingest(first, second, other_series)
    series = clinic_client.get(f"/dicomweb/studies/{first.StudyInstanceUID}/series/{first.SeriesInstanceUID}")
    assert {str(d.SOPInstanceUID) for d in _datasets(series)} == {first.SOPInstanceUID, second.SOPInstanceUID}
    one = clinic_client.get(_url(second))
    assert [str(d.SOPInstanceUID) for d in _datasets(one)] == [second.SOPInstanceUID]
    wrong_series = clinic_client.get(
        f"/dicomweb/studies/{first.StudyInstanceUID}/series/{other_series.SeriesInstanceUID}"
        f"/instances/{first.SOPInstanceUID}"
    )
    assert wrong_series.status_code == 404


@pytest.mark.requirement("R-7.5c")
@pytest.mark.requirement("R-7.1.5")
def test_stored_jpeg_ls_goes_out_as_stored_with_star_and_decodes_to_identical_pixels_by_default(
    ingest, clinic_client, django_capture_on_commit_callbacks
):
    ds = build.image(rows=32, columns=48)
    ingest(ds)
    _compress(ds.SOPInstanceUID, django_capture_on_commit_callbacks)

    stored = clinic_client.get(_url(ds), HTTP_ACCEPT=f"{MULTIPART_DICOM}; transfer-syntax=*")
    [(headers, body)] = _parts(stored)
    assert headers["Content-Type"] == f"application/dicom; transfer-syntax={JLS}"
    as_stored = pydicom.dcmread(io.BytesIO(body))
    assert as_stored.file_meta.TransferSyntaxUID == JLS
    assert np.array_equal(as_stored.pixel_array, ds.pixel_array)

    same = clinic_client.get(_url(ds), HTTP_ACCEPT=f"{MULTIPART_DICOM}; transfer-syntax={JLS}")
    assert pydicom.dcmread(io.BytesIO(_parts(same)[0][1])).file_meta.TransferSyntaxUID == JLS

    default = _datasets(clinic_client.get(_url(ds), HTTP_ACCEPT=MULTIPART_DICOM))[0]
    assert default.file_meta.TransferSyntaxUID == EVRLE
    assert np.array_equal(default.pixel_array, ds.pixel_array)


def test_a_compressed_instance_is_served_with_its_own_sop_instance_uid(
    ingest, clinic_client, django_capture_on_commit_callbacks
):
    ds = build.image()
    ingest(ds)
    _compress(ds.SOPInstanceUID, django_capture_on_commit_callbacks)
    [got] = _datasets(clinic_client.get(_url(ds), HTTP_ACCEPT=f"{MULTIPART_DICOM}; transfer-syntax=*"))
    assert got.SOPInstanceUID == ds.SOPInstanceUID


@pytest.mark.requirement("R-7.5c")
def test_asking_for_a_lossy_syntax_is_refused_with_406_citing_r_7_5c(ingest, clinic_client):
    ds = build.image()
    ingest(ds)
    resp = clinic_client.get(_url(ds), HTTP_ACCEPT=f"{MULTIPART_DICOM}; transfer-syntax={JPEGBaseline8Bit}")
    assert resp.status_code == 406
    assert resp.json()["code"] == "lossy_refused"
    assert "R-7.5c" in resp.json()["detail"]
    study = clinic_client.get(
        f"/dicomweb/studies/{ds.StudyInstanceUID}",
        HTTP_ACCEPT=f"{MULTIPART_DICOM}; transfer-syntax=1.2.840.10008.1.2.4.91",
    )
    assert study.status_code == 406 and "R-7.5c" in study.json()["detail"]


@pytest.mark.requirement("R-7.5c")
def test_an_image_received_lossy_is_served_in_exactly_its_own_syntax(ingest, clinic_client):
    pixels = np.random.default_rng(3).integers(0, 255, (32, 32), dtype=np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(pixels).save(jpeg, format="JPEG", quality=80)
    ds = build.image(bits=8, pixels=pixels, transfer_syntax=JPEGBaseline8Bit, LossyImageCompression="01")
    ds.PixelData = encapsulate([jpeg.getvalue()])
    ds["PixelData"].VR = "OB"
    ingest(ds)
    resp = clinic_client.get(_url(ds), HTTP_ACCEPT=f"{MULTIPART_DICOM}; transfer-syntax={JPEGBaseline8Bit}")
    [(headers, body)] = _parts(resp)
    assert headers["Content-Type"] == f"application/dicom; transfer-syntax={JPEGBaseline8Bit}"
    assert pydicom.dcmread(io.BytesIO(body)).PixelData == ds.PixelData, "the lossy codestream must not change"


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("*/*", 200),
        ("multipart/related", 200),
        (f"{MULTIPART_DICOM}; transfer-syntax=1.2.840.10008.1.2", 200),
        ("application/json", 406),
        ('multipart/related; type="image/jpeg"', 406),
        (f"{MULTIPART_DICOM}; transfer-syntax={RLELossless}", 406),
        (f"{MULTIPART_DICOM}; transfer-syntax={RLELossless}, {MULTIPART_DICOM}; q=0.5", 200),
    ],
)
def test_accept_header_negotiation(ingest, clinic_client, accept, status):
    ds = build.image()
    ingest(ds)
    resp = clinic_client.get(_url(ds), HTTP_ACCEPT=accept)
    assert resp.status_code == status
    if status == 406:
        assert resp.json()["code"] == "not_acceptable"


@pytest.mark.requirement("R-6.2.9.2c")
def test_owner_identity_is_restored_for_the_owning_clinic_and_stays_pseudonymised_in_storage(
    ingest, clinic_client
):
    ds = build.image(owner="Zhang", animal="Lucky")
    ingest(ds)
    inst = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    with blobs.store().open(inst.blob.key) as f:
        kept = pydicom.dcmread(f)
    assert str(kept.ResponsiblePerson).startswith("ANON")
    [got] = _datasets(clinic_client.get(_url(ds), HTTP_ACCEPT=f"{MULTIPART_DICOM}; transfer-syntax=*"))
    assert str(got.PatientName) == "Zhang^Lucky"
    assert got.ResponsiblePerson == "Zhang"


def test_an_instance_without_owner_identity_streams_the_stored_bytes_unchanged(ingest, clinic_client):
    ds = build.image(owner=None, species=None, breed=None)
    ingest(ds)
    inst = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    with blobs.store().open(inst.blob.key) as f:
        stored = f.read()
    [(_, body)] = _parts(clinic_client.get(_url(ds), HTTP_ACCEPT=f"{MULTIPART_DICOM}; transfer-syntax=*"))
    assert body == stored


# --- metadata ----------------------------------------------------------------------------------------


@pytest.mark.requirement("R-6.2.9.2c")
def test_study_metadata_is_dicom_json_with_absolute_bulk_data_urls_and_the_owner_restored(
    ingest, clinic_client
):
    datasets = build.study(2, owner="Wang", animal="Mimi")
    ingest(*datasets)
    resp = clinic_client.get(f"/dicomweb/studies/{datasets[0].StudyInstanceUID}/metadata")
    assert resp.status_code == 200
    assert resp["Content-Type"].startswith("application/dicom+json")
    items = json.loads(b"".join(resp.streaming_content))
    assert len(items) == 2
    item = items[0]
    assert item["00100010"]["Value"] == [{"Alphabetic": "Wang^Mimi"}]
    assert item["00102297"]["Value"] == [{"Alphabetic": "Wang"}]
    uri = item["7FE00010"]["BulkDataURI"]
    assert uri.startswith("http://testserver/dicomweb/studies/") and uri.endswith("/bulkdata/7FE00010")
    # The URL works as given (the test client takes the path).
    pixel_parts = _parts(clinic_client.get(uri.removeprefix("http://testserver")))
    sop = item["00080018"]["Value"][0]
    source = next(d for d in datasets if d.SOPInstanceUID == sop)
    assert pixel_parts[0][1] == source.PixelData
    assert AuditEvent.objects.filter(action="study.viewed").count() == 1


def test_series_and_instance_metadata_list_their_instances(ingest, clinic_client):
    a, b = build.study(2)
    ingest(a, b)
    series = clinic_client.get(
        f"/dicomweb/studies/{a.StudyInstanceUID}/series/{a.SeriesInstanceUID}/metadata"
    )
    assert len(json.loads(b"".join(series.streaming_content))) == 2
    one = clinic_client.get(_url(b, "metadata"))
    [item] = json.loads(b"".join(one.streaming_content))
    assert item["00080018"]["Value"] == [b.SOPInstanceUID]
    assert item["00083002"]["Value"] == [EVRLE]


# --- frames and bulk data ----------------------------------------------------------------------------


@pytest.mark.requirement("R-7.1.5")
def test_frames_are_pixel_exact_uncompressed_by_default(ingest, clinic_client):
    ds, pixels = _multiframe()
    ingest(ds)
    parts = _parts(clinic_client.get(_url(ds, "frames", "1,3")))
    assert [h["Content-Type"] for h, _ in parts] == [f"application/octet-stream; transfer-syntax={EVRLE}"] * 2
    assert parts[0][1] == pixels[0].tobytes()
    assert parts[1][1] == pixels[2].tobytes()


@pytest.mark.requirement("R-7.1.5")
@pytest.mark.requirement("R-7.5c")
def test_compressed_frames_go_out_as_stored_jpeg_ls_or_decoded_exactly(
    ingest, clinic_client, django_capture_on_commit_callbacks
):
    ds, pixels = _multiframe()
    ingest(ds)
    _compress(ds.SOPInstanceUID, django_capture_on_commit_callbacks)
    url = _url(ds, "frames", "2")
    for accept in (
        "multipart/related; type=application/octet-stream; transfer-syntax=*",  # what OHIF sends
        'multipart/related; type="image/jls"',
        f'multipart/related; type="image/jls"; transfer-syntax={JLS}',
    ):
        [(headers, body)] = _parts(clinic_client.get(url, HTTP_ACCEPT=accept))
        assert headers["Content-Type"] == f"image/jls; transfer-syntax={JLS}", accept
        assert body[:2] == b"\xff\xd8", "a JPEG-LS codestream starts with SOI"
        frame = pydicom.Dataset()
        for keyword in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "BitsStored"):
            setattr(frame, keyword, ds[keyword].value)
        frame.PixelRepresentation, frame.PhotometricInterpretation, frame.NumberOfFrames = 0, "MONOCHROME2", 1
        frame.file_meta = pydicom.dataset.FileMetaDataset()
        frame.file_meta.TransferSyntaxUID = JPEGLSLossless
        frame.PixelData = encapsulate([body])
        assert np.array_equal(frame.pixel_array, pixels[1])
    [(headers, body)] = _parts(clinic_client.get(url))
    assert headers["Content-Type"].startswith("application/octet-stream")
    assert body == pixels[1].tobytes()
    lossy = clinic_client.get(url, HTTP_ACCEPT='multipart/related; type="image/jpeg"')
    assert lossy.status_code == 406 and "R-7.5c" in lossy.json()["detail"]


def test_frame_numbers_out_of_range_are_404_naming_the_frame(ingest, clinic_client):
    ds, _ = _multiframe(frames=2)
    ingest(ds)
    resp = clinic_client.get(_url(ds, "frames", "1,5"))
    assert resp.status_code == 404
    assert "frame 5" in resp.json()["detail"]
    assert clinic_client.get(_url(ds, "frames", "one")).status_code == 400
    assert clinic_client.get(_url(ds, "frames", "0")).status_code == 400


def test_bulk_data_answers_the_element_value(ingest, clinic_client):
    profile = bytes(range(256)) * 8
    ds = build.image(ICCProfile=profile)
    ingest(ds)
    [item] = json.loads(b"".join(clinic_client.get(_url(ds, "metadata")).streaming_content))
    uri = item["00282000"]["BulkDataURI"]
    [(headers, body)] = _parts(clinic_client.get(uri.removeprefix("http://testserver")))
    assert headers["Content-Type"] == "application/octet-stream"
    assert body == profile
    assert clinic_client.get(_url(ds, "bulkdata", "00091001")).status_code == 404
    assert clinic_client.get(_url(ds, "bulkdata", "zz")).status_code == 400


# --- rendered and thumbnails -------------------------------------------------------------------------


def _halves(low: int, high: int, **attrs) -> pydicom.Dataset:
    pixels = np.full((64, 64), low, dtype=np.uint16)
    pixels[:, 32:] = high
    return build.image(pixels=pixels, **attrs)


def test_rendered_image_applies_the_dataset_window_by_default(ingest, clinic_client):
    ds = _halves(1000, 3000)  # the builder's window: center 2000, width 4000
    ingest(ds)
    jpeg = clinic_client.get(_url(ds, "rendered"))
    assert jpeg["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (64, 64)
    png = _png(clinic_client.get(_url(ds, "rendered"), HTTP_ACCEPT="image/png"))
    # PS3.3 C.11.2.1.2.1: ((1000 - 1999.5) / 3999 + 0.5) * 255 = 64, and 191 for 3000.
    assert (png[0, 0], png[0, 63]) == (64, 191)


def test_rendered_window_parameter_and_modality_lut_and_monochrome1(ingest, clinic_client):
    ds = _halves(1000, 3000, RescaleSlope=1, RescaleIntercept=-1024, PhotometricInterpretation="MONOCHROME1")
    ingest(ds)
    png = _png(clinic_client.get(_url(ds, "rendered") + "?window=0,100,linear", HTTP_ACCEPT="image/png"))
    # Rescaled to -24 and 1976; window 0/100 gives 67 and 255; MONOCHROME1 inverts them.
    assert (png[0, 0], png[0, 63]) == (255 - 67, 0)
    bad = clinic_client.get(_url(ds, "rendered") + "?window=0,abc,linear")
    assert bad.status_code == 400 and "window" in bad.json()["detail"]


def test_rendered_viewport_and_frame_and_thumbnails_have_the_expected_sizes(ingest, clinic_client):
    ds = build.image(rows=128, columns=256)
    multi, _ = _multiframe(frames=2, rows=20, columns=10)
    ingest(ds, multi)
    fitted = clinic_client.get(_url(ds, "rendered") + "?viewport=64,64&quality=50")
    assert Image.open(io.BytesIO(fitted.content)).size == (64, 32)
    cropped = _png(
        clinic_client.get(_url(ds, "rendered") + "?viewport=10,10,0,0,64,64", HTTP_ACCEPT="image/png")
    )
    assert cropped.shape == (10, 10)
    thumb = clinic_client.get(_url(ds, "thumbnail"))
    assert thumb["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (128, 64)
    frame = clinic_client.get(_url(multi, "frames", "2", "rendered"), HTTP_ACCEPT="image/png")
    assert _png(frame).shape == (20, 10)
    assert clinic_client.get(_url(multi, "frames", "3", "rendered")).status_code == 404
    for url in (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/rendered",
        f"/dicomweb/studies/{ds.StudyInstanceUID}/thumbnail",
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/rendered",
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/thumbnail",
    ):
        resp = clinic_client.get(url)
        assert resp.status_code == 200 and resp["Content-Type"] == "image/jpeg", url
        Image.open(io.BytesIO(resp.content)).verify()
    assert clinic_client.get(_url(ds, "rendered"), HTTP_ACCEPT="image/gif").status_code == 406


def test_a_compressed_instance_renders_like_the_original(
    ingest, clinic_client, django_capture_on_commit_callbacks
):
    ds = _halves(1000, 3000)
    ingest(ds)
    before = _png(clinic_client.get(_url(ds, "rendered"), HTTP_ACCEPT="image/png"))
    _compress(ds.SOPInstanceUID, django_capture_on_commit_callbacks)
    after = _png(clinic_client.get(_url(ds, "rendered"), HTTP_ACCEPT="image/png"))
    assert np.array_equal(before, after)


# --- ZIP ---------------------------------------------------------------------------------------------


@pytest.mark.requirement("R-6.2.9.2a")
@pytest.mark.parametrize("how", ["zip-url", "accept"])
def test_a_study_downloads_as_a_zip_of_every_instance_with_the_owner_restored(
    ingest, clinic_client, django_capture_on_commit_callbacks, how
):
    datasets = build.study(3, owner="Li", animal="Dou")
    ingest(*datasets)
    _compress(datasets[0].SOPInstanceUID, django_capture_on_commit_callbacks)
    study = datasets[0].StudyInstanceUID
    if how == "zip-url":
        resp = clinic_client.get(f"/dicomweb/studies/{study}/zip")
    else:
        resp = clinic_client.get(f"/dicomweb/studies/{study}", HTTP_ACCEPT="application/zip")
    assert resp.status_code == 200 and resp["Content-Type"] == "application/zip"
    assert "attachment" in resp["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(resp.streaming_content)))
    assert archive.testzip() is None
    files = {
        name.rsplit("/", 1)[-1].removesuffix(".dcm"): pydicom.dcmread(archive.open(name))
        for name in archive.namelist()
    }
    assert set(files) == {str(d.SOPInstanceUID) for d in datasets}
    assert {str(f.PatientName) for f in files.values()} == {"Li^Dou"}
    for source in datasets:
        assert np.array_equal(files[source.SOPInstanceUID].pixel_array, source.pixel_array)
    compressed = files[datasets[0].SOPInstanceUID]
    assert compressed.file_meta.TransferSyntaxUID == JLS, "the ZIP holds the stored (lossless) syntax"
    assert AuditEvent.objects.filter(action="study.downloaded", target=f"study:{study}").count() == 1


# --- tenancy and audit -------------------------------------------------------------------------------


def test_another_clinic_gets_404_on_every_wado_route(ingest, other_clinic_client):
    ds, _ = _multiframe(frames=1)
    ingest(ds)
    study = f"/dicomweb/studies/{ds.StudyInstanceUID}"
    series = f"{study}/series/{ds.SeriesInstanceUID}"
    urls = [
        study,
        f"{study}/zip",
        f"{study}/metadata",
        f"{study}/rendered",
        f"{study}/thumbnail",
        series,
        f"{series}/metadata",
        f"{series}/rendered",
        f"{series}/thumbnail",
        _url(ds),
        _url(ds, "metadata"),
        _url(ds, "rendered"),
        _url(ds, "thumbnail"),
        _url(ds, "frames", "1"),
        _url(ds, "frames", "1", "rendered"),
        _url(ds, "bulkdata", "7FE00010"),
    ]
    for url in urls:
        resp = other_clinic_client.get(url)
        assert resp.status_code == 404, f"{url}: {resp.status_code}"
    assert not AuditEvent.objects.filter(action__startswith="study.").exists()


def test_frames_and_rendered_requests_are_not_audited_one_by_one(ingest, clinic_client):
    ds, _ = _multiframe(frames=2)
    ingest(ds)
    for tail in (("frames", "1"), ("frames", "2"), ("rendered",), ("thumbnail",), ("metadata",)):
        assert clinic_client.get(_url(ds, *tail)).status_code == 200
    assert not AuditEvent.objects.filter(action__startswith="study.").exists()


# --- re-identification on export: spliced header, stored pixel bytes ---------------------------------


def _with_owner_details(syntax: str) -> pydicom.Dataset:
    """An image whose owner attributes are removed (address, phone) or replaced (name) on ingest, with
    a sequence after them, stored in `syntax`."""
    ds = build.image(
        rows=40,
        columns=30,
        owner="王小明",
        animal="旺财",
        PatientAddress="北京市朝阳区建国路 1 号",
        PatientTelephoneNumbers="13800138000",
    )
    code = pydicom.Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = (
        "448771007",
        "SCT",
        "Canis lupus familiaris",
    )
    ds.PatientSpeciesCodeSequence = [code]
    if syntax == "implicit":
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    elif syntax == "jpeg-ls":
        ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls", generate_instance_uid=False)
    return ds


def _full_rewrite(sop_uid: str) -> pydicom.Dataset:
    """What export used to send the owning clinic: the stored file parsed whole, the owner put back,
    written again."""
    inst = Instance.objects.get(sop_instance_uid=sop_uid)
    with blobs.store().open(inst.blob.key) as f:
        ds = pydicom.dcmread(f)
    restore_identity(ds, identity.originals_for_instances([sop_uid])[sop_uid])
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


@pytest.mark.requirement("R-6.2.9.2c")
@pytest.mark.parametrize("syntax", ["explicit", "implicit", "jpeg-ls"])
@pytest.mark.parametrize("size", ["whole", "streamed"])
def test_the_owning_clinic_gets_the_same_file_as_a_full_rewrite_with_the_stored_pixels(
    ingest, clinic_client, monkeypatch, syntax, size
):
    ds = _with_owner_details(syntax)
    ingest(ds)
    stored_syntax = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID).transfer_syntax_uid
    assert stored_syntax == ds.file_meta.TransferSyntaxUID
    if size == "streamed":
        from vetpacs.dicomweb import wado

        # Past this size an instance streams from the blob instead of being read whole.
        monkeypatch.setattr(wado, "WHOLE_BODY_MAX", 1024)
    resp = clinic_client.get(_url(ds), HTTP_ACCEPT=f"{MULTIPART_DICOM}; transfer-syntax=*")
    body = b"".join(resp.streaming_content)
    assert int(resp["Content-Length"]) == len(body)
    resp.streaming_content = [body]
    [(headers, part)] = _parts(resp)
    assert headers["Content-Type"] == f"application/dicom; transfer-syntax={stored_syntax}"
    got = pydicom.dcmread(io.BytesIO(part))
    expected = _full_rewrite(ds.SOPInstanceUID)

    assert got.file_meta.TransferSyntaxUID == stored_syntax
    assert [e.tag for e in got] == [e.tag for e in expected]
    for elem in expected:
        assert got[elem.tag] == elem, elem.keyword
    assert str(got.PatientName) == "王小明^旺财" and got.ResponsiblePerson == "王小明"
    assert got.PatientAddress == "北京市朝阳区建国路 1 号" and got.PatientTelephoneNumbers == "13800138000"
    assert got.PatientSpeciesCodeSequence[0].CodeValue == "448771007"
    assert got.PixelData == ds.PixelData, "the stored pixel bytes go out untouched"
    assert np.array_equal(got.pixel_array, expected.pixel_array)


def test_a_single_instance_answer_has_a_content_length_and_comes_in_one_piece(ingest, clinic_client):
    ds = build.image(owner="Zhang", animal="Lucky")
    ingest(ds)
    for accept in (f"{MULTIPART_DICOM}; transfer-syntax=*", MULTIPART_DICOM, "application/dicom"):
        resp = clinic_client.get(_url(ds), HTTP_ACCEPT=accept)
        [chunk] = resp.streaming_content
        assert int(resp["Content-Length"]) == len(chunk), accept
    single = pydicom.dcmread(io.BytesIO(chunk))
    assert single.ResponsiblePerson == "Zhang" and np.array_equal(single.pixel_array, ds.pixel_array)


def test_retrieving_one_instance_reads_its_row_and_its_owner_identity_in_one_statement_each(
    ingest, clinic_client
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ds = build.image(owner="Zhang", animal="Lucky")
    ingest(ds)
    accept = f"{MULTIPART_DICOM}; transfer-syntax=*"

    def archive_and_identity_statements() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            [got] = _datasets(clinic_client.get(_url(ds), HTTP_ACCEPT=accept))
        assert got.ResponsiblePerson == "Zhang"
        # Token checks (cached per process) and the audit event's own statements are counted elsewhere.
        return [
            q["sql"] for q in queries.captured_queries if "archive_" in q["sql"] or "identity_" in q["sql"]
        ]

    first = archive_and_identity_statements()
    assert len(first) == 3, first  # the archive's generation, the instance row, the owner's identity
    # Again, unchanged archive: only the generation is read; the prepared instance answers.
    again = archive_and_identity_statements()
    assert len(again) == 1 and "archivegeneration" in again[0], again
    assert AuditEvent.objects.filter(action="study.retrieved").count() == 2


# --- repeat retrievals (prepared instances, wado._prepared) --------------------------------------------

ANY = f"{MULTIPART_DICOM}; transfer-syntax=*"


@pytest.mark.requirement("R-7.3.4.5b")
def test_a_repeat_retrieval_is_audited_again_and_another_clinic_still_gets_404(
    ingest, clinic_client, other_clinic_client
):
    ds = build.image(owner="Zhang", animal="Lucky")
    ingest(ds)
    for _ in range(3):
        [got] = _datasets(clinic_client.get(_url(ds), HTTP_ACCEPT=ANY))
        assert got.ResponsiblePerson == "Zhang" and np.array_equal(got.pixel_array, ds.pixel_array)
    single = clinic_client.get(_url(ds), HTTP_ACCEPT="application/dicom")
    assert pydicom.dcmread(io.BytesIO(b"".join(single.streaming_content))).ResponsiblePerson == "Zhang"
    retrieved = AuditEvent.objects.filter(action="study.retrieved", target=f"study:{ds.StudyInstanceUID}")
    assert retrieved.count() == 4
    for accept in (ANY, "application/dicom", MULTIPART_DICOM):
        assert other_clinic_client.get(_url(ds), HTTP_ACCEPT=accept).status_code == 404
    # The instance under another series or study of the URL is not found, cached or not.
    wrong_series = _url(ds).replace(ds.SeriesInstanceUID, ds.SeriesInstanceUID + ".9")
    wrong_study = _url(ds).replace(ds.StudyInstanceUID, ds.StudyInstanceUID + ".9", 1)
    assert clinic_client.get(wrong_series, HTTP_ACCEPT=ANY).status_code == 404
    assert clinic_client.get(wrong_study, HTTP_ACCEPT=ANY).status_code == 404
    assert AuditEvent.objects.filter(action="study.retrieved").count() == 4
    # A lossy syntax is refused for a prepared instance as for any other (R-7.5c).
    lossy = f"{MULTIPART_DICOM}; transfer-syntax={JPEGBaseline8Bit}"
    assert clinic_client.get(_url(ds), HTTP_ACCEPT=lossy).status_code == 406


def test_after_re_encoding_the_next_retrieval_gets_the_instance_as_it_is_stored_now(
    ingest, clinic_client, django_capture_on_commit_callbacks
):
    ds = build.image(owner="Zhang", animal="Lucky")
    ingest(ds)
    [before] = _parts(clinic_client.get(_url(ds), HTTP_ACCEPT=ANY))
    assert before[0]["Content-Type"] == f"application/dicom; transfer-syntax={EVRLE}"
    _compress(ds.SOPInstanceUID, django_capture_on_commit_callbacks)  # a new blob; the old one is deleted
    [(headers, body)] = _parts(clinic_client.get(_url(ds), HTTP_ACCEPT=ANY))
    assert headers["Content-Type"] == f"application/dicom; transfer-syntax={JLS}"
    got = pydicom.dcmread(io.BytesIO(body))
    assert got.ResponsiblePerson == "Zhang" and np.array_equal(got.pixel_array, ds.pixel_array)


def test_after_the_clinics_keys_are_destroyed_a_repeat_retrieval_no_longer_carries_the_owner(
    ingest, clinic, clinic_client
):
    ds = build.image(owner="Zhang", animal="Lucky")
    ingest(ds)
    [got] = _datasets(clinic_client.get(_url(ds), HTTP_ACCEPT=ANY))
    assert got.ResponsiblePerson == "Zhang"
    assert identity.destroy_keys(clinic.id) >= 1  # crypto-shredding (R-7.3.4.1e)
    [got] = _datasets(clinic_client.get(_url(ds), HTTP_ACCEPT=ANY))
    assert got.ResponsiblePerson != "Zhang" and str(got.ResponsiblePerson).startswith("ANON")
    assert np.array_equal(got.pixel_array, ds.pixel_array)


def test_prepared_instances_stay_within_their_memory_bound(ingest, clinic_client, monkeypatch):
    from vetpacs.dicomweb import wado

    datasets = [build.image(owner=f"Owner{i}") for i in range(4)]
    ingest(*datasets)
    for ds in datasets:
        _datasets(clinic_client.get(_url(ds), HTTP_ACCEPT=ANY))
    heads = [len(entry.head) for entry in wado._prepared.values()]
    assert len(heads) == 4 and all(heads), "the owners' headers are kept re-identified"
    # Room for the last two headers only (their UIDs, and so their lengths, differ by a few bytes).
    wado.clear_prepared()
    monkeypatch.setattr(wado, "PREPARED_MAX_TOTAL_BYTES", heads[2] + heads[3])
    for ds in datasets:
        [got] = _datasets(clinic_client.get(_url(ds), HTTP_ACCEPT=ANY))
        assert got.ResponsiblePerson == ds.ResponsiblePerson
    assert len(wado._prepared) == 2
    assert wado._prepared_bytes == sum(len(e.head) for e in wado._prepared.values())
    assert list(wado._prepared)[-1][0] == datasets[-1].SOPInstanceUID, "the least recently used go first"
