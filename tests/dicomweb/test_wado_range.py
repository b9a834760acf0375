"""Range requests (RFC 9110 14) on one instance retrieved as a single application/dicom file: a large
download in pieces fetched at once, or resumed where it was cut, is the same file as the whole one."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient
from pydicom.uid import ExplicitVRLittleEndian

from tests.builders import dicom as build
from tests.interop.conftest import live_platform
from vetpacs.apps.archive import services
from vetpacs.apps.archive.models import Instance
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.identity import services as identity
from vetpacs.dicomweb import ranges, wado

DICOM = "application/dicom"
ANY = f"{DICOM}; transfer-syntax=*"
EVRLE = str(ExplicitVRLittleEndian)


def _url(ds) -> str:
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    )


def _multiframe(frames: int, rows: int, columns: int) -> pydicom.Dataset:
    pixels = np.random.default_rng(11).integers(0, 4000, (frames, rows, columns), dtype=np.uint16)
    ds = build.image(pixels=pixels[0], modality="OT", owner="王小明", animal="旺财")
    ds.NumberOfFrames = frames
    ds.PixelData = pixels.tobytes()
    return ds


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _get(client, ds, accept: str = ANY, **headers: str):
    return client.get(_url(ds), HTTP_ACCEPT=accept, **{f"HTTP_{k.upper()}": v for k, v in headers.items()})


def _quarters(size: int) -> list[tuple[int, int]]:
    cuts = [0, size // 4, size // 2, 3 * size // 4, size]
    return [(cuts[i], cuts[i + 1] - 1) for i in range(4)]


# --- in process: every path of an instance's answer -------------------------------------------------


@pytest.fixture(params=["read whole", "streamed from the blob"])
def large(request, monkeypatch):
    """Small instances are read whole; past WHOLE_BODY_MAX they stream from the blob in pieces: both
    are tried, the second with pieces small enough that every range spans several of them."""
    if request.param == "streamed from the blob":
        monkeypatch.setattr(wado, "WHOLE_BODY_MAX", 4096)
        monkeypatch.setattr(ranges, "STREAM_CHUNK", 16 * 1024)
    return request.param


@pytest.mark.requirement("R-6.2.1h")
def test_four_ranges_joined_are_the_whole_file_with_the_owner_put_back(ingest, clinic_client, large):
    ds = _multiframe(frames=6, rows=128, columns=96)
    ingest(ds)
    whole = _get(clinic_client, ds)
    assert whole.status_code == 200
    assert whole["Accept-Ranges"] == "bytes"
    etag = whole["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{40}"', etag), "a strong ETag"
    full = _body(whole)
    assert int(whole["Content-Length"]) == len(full) > 6 * 128 * 96 * 2

    pieces = []
    for start, end in _quarters(len(full)):
        resp = _get(clinic_client, ds, range=f"bytes={start}-{end}")
        assert resp.status_code == 206
        assert resp["Content-Range"] == f"bytes {start}-{end}/{len(full)}"
        assert resp["ETag"] == etag and resp["Content-Type"] == f"{DICOM}; transfer-syntax={EVRLE}"
        body = _body(resp)
        assert int(resp["Content-Length"]) == len(body) == end - start + 1
        pieces.append(body)
    joined = b"".join(pieces)
    assert joined == full

    got = pydicom.dcmread(io.BytesIO(joined))
    assert str(got.PatientName) == "王小明^旺财" and got.ResponsiblePerson == "王小明"
    assert got.PixelData == ds.PixelData
    assert np.array_equal(got.pixel_array, ds.pixel_array)


@pytest.mark.requirement("R-6.2.1h")
def test_suffix_open_and_clipped_ranges_and_one_that_is_outside_the_file(ingest, clinic_client, large):
    ds = _multiframe(frames=2, rows=64, columns=64)
    ingest(ds)
    full = _body(_get(clinic_client, ds))
    size = len(full)

    suffix = _get(clinic_client, ds, range="bytes=-1000")
    assert suffix.status_code == 206 and suffix["Content-Range"] == f"bytes {size - 1000}-{size - 1}/{size}"
    assert _body(suffix) == full[-1000:]

    opened = _get(clinic_client, ds, range="bytes=300-")
    assert opened.status_code == 206 and opened["Content-Range"] == f"bytes 300-{size - 1}/{size}"
    assert _body(opened) == full[300:]

    # Inside the re-identified header only, and a last position past the end (clipped to the file).
    assert _body(_get(clinic_client, ds, range="bytes=0-9")) == full[:10]
    clipped = _get(clinic_client, ds, range=f"bytes={size - 5}-{size + 1000}")
    assert clipped["Content-Range"] == f"bytes {size - 5}-{size - 1}/{size}"
    assert _body(clipped) == full[-5:]
    longer = _get(clinic_client, ds, range=f"bytes=-{size + 10}")
    assert longer.status_code == 206 and _body(longer) == full

    for outside in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        resp = _get(clinic_client, ds, range=outside)
        assert resp.status_code == 416, outside
        assert resp["Content-Range"] == f"bytes */{size}"


@pytest.mark.requirement("R-6.2.1h")
def test_if_range_with_another_etag_several_ranges_or_a_malformed_range_get_the_whole_file(
    ingest, clinic_client, large
):
    ds = _multiframe(frames=2, rows=64, columns=64)
    ingest(ds)
    whole = _get(clinic_client, ds)
    full, etag = _body(whole), whole["ETag"]

    resumed = _get(clinic_client, ds, range="bytes=100-", if_range=etag)
    assert resumed.status_code == 206 and _body(resumed) == full[100:]
    for if_range in ('"not-this-version"', f"W/{etag}", "Sat, 05 Dec 2026 01:00:00 GMT"):
        resp = _get(clinic_client, ds, range="bytes=100-", if_range=if_range)
        assert resp.status_code == 200, if_range
        assert "Content-Range" not in resp and _body(resp) == full

    for header in ("bytes=0-9,20-29", "bytes=5-2", "bytes=abc", "items=0-9"):
        resp = _get(clinic_client, ds, range=header)
        assert resp.status_code == 200, header
        assert _body(resp) == full


def test_a_repeat_retrieval_answers_ranges_with_the_same_etag(ingest, clinic_client):
    """The second request is answered from the prepared instance (wado._prepared): same bytes, same ETag."""
    ds = _multiframe(frames=2, rows=64, columns=64)
    ingest(ds)
    first = _get(clinic_client, ds)
    full, etag = _body(first), first["ETag"]
    assert wado._prepared, "the instance is prepared for the next retrieval"
    for _ in range(2):
        again = _get(clinic_client, ds, range="bytes=1000-1999", if_range=etag)
        assert again.status_code == 206 and again["ETag"] == etag
        assert _body(again) == full[1000:2000]
    assert _get(clinic_client, ds, range=f"bytes={len(full)}-").status_code == 416
    repeat = _get(clinic_client, ds)
    assert repeat["ETag"] == etag and repeat["Accept-Ranges"] == "bytes" and _body(repeat) == full


def test_when_the_served_bytes_change_so_does_the_etag_and_a_resume_gets_the_whole_file(
    ingest, clinic, clinic_client
):
    ds = _multiframe(frames=2, rows=64, columns=64)
    ingest(ds)
    before = _get(clinic_client, ds)
    full_before, etag_before = _body(before), before["ETag"]
    # The clinic's keys destroyed (R-7.3.4.1e): the owner is no longer put back.
    assert identity.destroy_keys(clinic.id) >= 1
    after = _get(clinic_client, ds, range="bytes=100-", if_range=etag_before)
    assert after.status_code == 200 and after["ETag"] != etag_before
    full_after = _body(after)
    assert full_after != full_before
    assert str(pydicom.dcmread(io.BytesIO(full_after)).ResponsiblePerson).startswith("ANON")


@pytest.mark.requirement("R-6.2.1h")
def test_ranged_reads_are_audited_as_retrievals_and_another_clinic_gets_404(
    ingest, clinic_client, other_clinic_client, large
):
    ds = _multiframe(frames=2, rows=64, columns=64)
    ingest(ds)
    for header in ("bytes=0-99", "bytes=-10", "bytes=100-"):
        assert other_clinic_client.get(_url(ds), HTTP_ACCEPT=ANY, HTTP_RANGE=header).status_code == 404
    assert not AuditEvent.objects.filter(action__startswith="study.").exists()

    assert _get(clinic_client, ds, range="bytes=0-99").status_code == 206
    assert _get(clinic_client, ds, range="bytes=100-").status_code == 206
    events = AuditEvent.objects.filter(action="study.retrieved", target=f"study:{ds.StudyInstanceUID}")
    assert sorted(e.detail["range"] for e in events) == ["bytes=0-99", "bytes=100-"]
    assert all(e.detail["instance"] == ds.SOPInstanceUID for e in events)

    # Without a token: refused before anything is read or recorded.
    from django.test import Client

    assert Client().get(_url(ds), HTTP_ACCEPT=ANY, HTTP_RANGE="bytes=0-99").status_code == 401
    assert events.count() == 2


def test_a_transcoded_answer_ignores_range_and_does_not_offer_it(
    ingest, clinic_client, django_capture_on_commit_callbacks
):
    ds = build.image(rows=32, columns=32)
    ingest(ds)
    inst = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.compress(inst.id)  # now stored as JPEG-LS Lossless
    resp = _get(clinic_client, ds, accept=DICOM, range="bytes=0-99")  # Explicit VR Little Endian asked
    assert resp.status_code == 200
    assert "Accept-Ranges" not in resp and "Content-Range" not in resp and "ETag" not in resp
    got = pydicom.dcmread(io.BytesIO(_body(resp)))
    assert got.file_meta.TransferSyntaxUID == EVRLE
    assert np.array_equal(got.pixel_array, ds.pixel_array)
    # Its stored syntax is the same file every time: ranges work there.
    stored = _get(clinic_client, ds, range="bytes=0-99")
    assert stored.status_code == 206 and len(_body(stored)) == 100


def test_multipart_answers_are_whole_whatever_the_range(ingest, clinic_client):
    ds = build.image()
    ingest(ds)
    resp = _get(clinic_client, ds, accept='multipart/related; type="application/dicom"', range="bytes=0-9")
    assert resp.status_code == 200 and "Content-Range" not in resp
    assert len(_body(resp)) > 64 * 64 * 2


@pytest.mark.requirement("R-6.2.1h")
def test_head_answers_as_get_would_with_no_body_no_blob_read_and_no_audit(
    ingest, clinic_client, other_clinic_client, large, monkeypatch
):
    ds = _multiframe(frames=8, rows=128, columns=96)
    ingest(ds)
    got = _get(clinic_client, ds)
    full = _body(got)
    retrievals = AuditEvent.objects.filter(action="study.retrieved")
    assert retrievals.count() == 1

    # A small instance is prepared now: a HEAD answers from what is kept and opens no blob. A large one
    # is not kept: a HEAD reads its header (to know the re-identified header's length), not its pixels.
    store = services.blobs.store()
    read: list[int] = []
    real_open = store.open

    def counted_open(key, start=0):  # the local store's open_range reads through it too
        stream = real_open(key, start)
        real_read = stream.read
        stream.read = lambda n=-1: read.append(len(data := real_read(n))) or data  # type: ignore[method-assign]
        return stream

    monkeypatch.setattr(store, "open", counted_open)
    head = clinic_client.head(_url(ds), HTTP_ACCEPT=ANY)
    if large == "read whole":
        assert read == []
    else:
        assert 0 < sum(read) <= wado.HEADER_GUESS < len(ds.PixelData) // 2
    assert head.status_code == 200 and head.content == b""
    for name in ("Content-Type", "ETag", "Accept-Ranges"):
        assert head[name] == got[name]
    assert int(head["Content-Length"]) == len(full)
    assert retrievals.count() == 1, "a HEAD retrieves nothing, so it records no retrieval"

    assert other_clinic_client.head(_url(ds), HTTP_ACCEPT=ANY).status_code == 404
    from django.test import Client

    assert Client().head(_url(ds), HTTP_ACCEPT=ANY).status_code == 401
    refused = clinic_client.put(_url(ds))
    assert refused.status_code == 405 and refused["Allow"] == "GET, HEAD"


def test_head_on_searches_and_metadata_gives_the_length_of_the_get(ingest, clinic_client):
    ds = build.image()
    ingest(ds)
    for path, accept in (
        ("/dicomweb/studies", "application/dicom+json"),
        (f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata", "application/dicom+json"),
        (f"/dicomweb/studies/{ds.StudyInstanceUID}", 'multipart/related; type="application/dicom"'),
    ):
        got = clinic_client.get(path, HTTP_ACCEPT=accept)
        head = clinic_client.head(path, HTTP_ACCEPT=accept)
        assert (head.status_code, got.status_code) == (200, 200), path
        assert head.content == b"", path
        # The same media type (a multipart answer draws a new boundary each time).
        assert head["Content-Type"].split(";")[0] == got["Content-Type"].split(";")[0], path
        if not got.streaming:
            assert int(head["Content-Length"]) == len(got.content), path
    refused = clinic_client.put("/dicomweb/studies")
    assert refused.status_code == 405 and refused["Allow"] == "GET, POST, HEAD"


# --- a real server, clients we did not write ---------------------------------------------------------

LIVE_FRAMES, LIVE_ROWS, LIVE_COLUMNS = 24, 512, 448  # 11 MB: past WHOLE_BODY_MAX, streamed from the blob


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with live_platform(tmp_path_factory.mktemp("wado-range"), VETPACS_COMPRESS_ON_INGEST="false") as (
        server,
        database,
    ):
        ds = _multiframe(LIVE_FRAMES, LIVE_ROWS, LIVE_COLUMNS)
        # One request with a Content-Length (the chunked upload dicomweb-client sends by default is
        # tested with STOW-RS in tests/interop).
        client = DICOMwebClient(url=server.dicomweb_url, headers=server.headers, chunk_size=64 * 1024 * 1024)
        client.store_instances([ds])
        url = f"{server.dicomweb_url}{_url(ds).removeprefix('/dicomweb')}"
        yield server, ds, url


@pytest.mark.requirement("R-6.2.1h")
@pytest.mark.slow
def test_four_ranges_fetched_at_once_from_a_live_server_join_to_the_whole_file(live):
    server, ds, url = live
    headers = {**server.headers, "Accept": ANY}
    whole = requests.get(url, headers=headers, timeout=120)
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    full, etag = whole.content, whole.headers["ETag"]
    assert int(whole.headers["Content-Length"]) == len(full) > wado.WHOLE_BODY_MAX

    def fetch(span: tuple[int, int]) -> requests.Response:
        start, end = span
        return requests.get(
            url, headers={**headers, "Range": f"bytes={start}-{end}", "If-Range": etag}, timeout=120
        )

    spans = _quarters(len(full))
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(fetch, spans))
    for (start, end), resp in zip(spans, answers, strict=True):
        assert resp.status_code == 206
        assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{len(full)}"
    joined = b"".join(resp.content for resp in answers)
    assert joined == full
    got = pydicom.dcmread(io.BytesIO(joined))
    assert str(got.PatientName) == "王小明^旺财" and got.ResponsiblePerson == "王小明"
    assert got.PixelData == ds.PixelData

    anonymous = requests.get(url, headers={"Accept": ANY, "Range": "bytes=0-99"}, timeout=30)
    assert anonymous.status_code == 401
    server.run_cli("create-org", "Other Clinic 别的诊所")
    out = server.run_cli("create-token", "--org", "Other Clinic 别的诊所", "--name", "other").stdout
    other_token = next(line.strip() for line in out.splitlines() if line.strip().startswith("vp_"))
    other = requests.get(
        url,
        headers={"Authorization": f"Bearer {other_token}", "Accept": ANY, "Range": "bytes=0-99"},
        timeout=30,
    )
    assert other.status_code == 404 and "Content-Range" not in other.headers


@pytest.mark.requirement("R-6.2.1h")
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_resumes_a_download_cut_halfway(live, tmp_path):
    server, ds, url = live
    auth = f"Authorization: Bearer {server.token}"
    whole = tmp_path / "whole.dcm"
    _curl("-o", str(whole), "-H", auth, "-H", f"Accept: {ANY}", url)
    full = whole.read_bytes()

    # A download cut halfway, resumed with `curl -C -`: curl asks for the rest from where its file ends.
    part = tmp_path / "part.dcm"
    part.write_bytes(full[: len(full) // 2])
    status = _curl("-C", "-", "-o", str(part), "-H", auth, "-H", f"Accept: {ANY}", "-w", "%{http_code}", url)
    assert status == "206"
    assert part.read_bytes() == full
    assert pydicom.dcmread(part).ResponsiblePerson == "王小明"

    # `curl --range` for one stretch of it.
    piece = tmp_path / "piece.bin"
    status = _curl(
        "--range",
        "1000-1999",
        "-o",
        str(piece),
        "-H",
        auth,
        "-H",
        f"Accept: {ANY}",
        "-w",
        "%{http_code}",
        url,
    )
    assert status == "206" and piece.read_bytes() == full[1000:2000]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.requirement("R-6.2.1h")
def test_curl_head_gives_the_size_and_the_etag_of_the_download(live):
    server, ds, url = live
    auth = f"Authorization: Bearer {server.token}"
    whole = requests.get(url, headers={**server.headers, "Accept": ANY}, timeout=120)
    out = _curl("--head", "-H", auth, "-H", f"Accept: {ANY}", url)
    status, *lines = out.splitlines()
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if ":" in line)
    }
    assert status.split()[1] == "200"
    assert int(headers["content-length"]) == len(whole.content) > wado.WHOLE_BODY_MAX
    assert headers["etag"] == whole.headers["ETag"] and headers["accept-ranges"] == "bytes"


def _curl(*args: str) -> str:
    done = subprocess.run(
        ["curl", "--silent", "--show-error", "--fail", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_header_longer_than_the_first_read_is_read_on_to_its_end(ingest, clinic_client, large):
    ds = _multiframe(frames=2, rows=64, columns=64)
    ds.TextValue = "long header " * (wado.HEADER_GUESS // 8) + "end"  # 96 KB (UT), before the pixels
    ingest(ds)
    full = _body(_get(clinic_client, ds))
    got = pydicom.dcmread(io.BytesIO(full))
    assert got.TextValue == ds.TextValue and got.ResponsiblePerson == "王小明"
    assert got.PixelData == ds.PixelData
