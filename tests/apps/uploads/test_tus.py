"""The tus 1.0 endpoint rule by rule: chunks, offsets, checksums, resume, termination, concatenation."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from tests.builders import dicom as build
from vetpacs.apps.archive.models import Instance
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.uploads import services
from vetpacs.apps.uploads.models import Upload

URL = "/api/v1/uploads/"
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = "application/offset+octet-stream"


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _metadata(**pairs: str) -> str:
    return ",".join(f"{k} {_b64(v)}" for k, v in pairs.items())


def _dicom() -> bytes:
    return build.to_bytes(build.image(rows=128, columns=128))


def _create(client, length: int, *, sha256: str | None = None, filename: str = "x.dcm", **headers) -> str:
    meta = {"filename": filename} | ({"sha256": sha256} if sha256 else {})
    resp = client.post(
        URL, headers=TUS | {"Upload-Length": str(length), "Upload-Metadata": _metadata(**meta)} | headers
    )
    assert resp.status_code == 201, resp.content
    assert resp["Tus-Resumable"] == "1.0.0"
    return resp["Location"]


def _patch(client, url: str, offset: int, data: bytes, **headers):
    return client.generic(
        "PATCH",
        url,
        data=data,
        content_type=OFFSET_STREAM,
        headers=TUS | {"Upload-Offset": str(offset)} | headers,
    )


def _checksum(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


def _offset(client, url: str) -> int:
    resp = client.head(url, headers=TUS)
    assert resp.status_code == 200
    assert resp["Cache-Control"] == "no-store"
    return int(resp["Upload-Offset"])


def _upload(client, data: bytes, chunk: int, **create_headers) -> object:
    url = _create(client, len(data), **create_headers)
    resp = None
    for start in range(0, len(data), chunk):
        resp = _patch(
            client,
            url,
            start,
            data[start : start + chunk],
            **{"Upload-Checksum": _checksum(data[start : start + chunk])},
        )
        assert resp.status_code == 204, resp.content
    return url, resp


def test_options_advertise_the_protocol_subset(client, db):
    # db: every request passes the blocked-address check, which reads the database now and then.
    resp = client.options(URL)
    assert resp.status_code == 204
    assert resp["Tus-Resumable"] == "1.0.0" and resp["Tus-Version"] == "1.0.0"
    assert resp["Tus-Extension"] == "creation,creation-with-upload,checksum,termination,concatenation"
    assert "sha256" in resp["Tus-Checksum-Algorithm"].split(",")
    assert int(resp["Tus-Max-Size"]) > 0


@pytest.mark.requirement("R-6.2.1h")
@pytest.mark.requirement("R-6.1.4")
def test_a_file_sent_in_chunks_is_archived_and_confirmed(clinic_client):
    data = _dicom()
    sha = hashlib.sha256(data).hexdigest()
    url, last = _upload(clinic_client, data, 10_000, sha256=sha)
    assert int(last["Upload-Offset"]) == len(data)
    sop = Instance.objects.get().sop_instance_uid
    assert last["Vetpacs-Ingest"] == f"stored; sop-instance-uid={sop}; sha256={sha}"
    head = clinic_client.head(url, headers=TUS)
    assert head["Vetpacs-Ingest"] == last["Vetpacs-Ingest"]
    assert head["Upload-Length"] == str(len(data)) and head["Upload-Offset"] == str(len(data))
    status = clinic_client.get(url).json()
    assert (status["state"], status["sop_instance_uid"], status["sha256"]) == ("stored", sop, sha)
    assert status["filename"] == "x.dcm"
    assert AuditEvent.objects.filter(action="upload.completed", target=f"upload:{status['id']}").exists()
    assert not list(services.uploads_dir().glob("*.part")), "a finished upload keeps no bytes in incoming"


def test_the_same_file_again_is_confirmed_as_a_duplicate(clinic_client):
    data = _dicom()
    _upload(clinic_client, data, len(data))
    _, again = _upload(clinic_client, data, len(data))
    assert again["Vetpacs-Ingest"].startswith("duplicate; sop-instance-uid=")
    assert Instance.objects.count() == 1


def test_a_patch_at_the_wrong_offset_is_a_conflict(clinic_client):
    data = _dicom()
    url = _create(clinic_client, len(data))
    assert _patch(clinic_client, url, 0, data[:1000]).status_code == 204
    resp = _patch(clinic_client, url, 500, data[500:1500])
    assert resp.status_code == 409
    assert resp["Tus-Resumable"] == "1.0.0"
    assert "offset 1000" in resp.json()["detail"]
    assert _offset(clinic_client, url) == 1000


@pytest.mark.requirement("R-6.1.4")
def test_a_chunk_whose_checksum_does_not_match_is_refused_and_not_kept(clinic_client):
    data = _dicom()
    url = _create(clinic_client, len(data))
    assert _patch(clinic_client, url, 0, data[:1000]).status_code == 204
    damaged = data[1000:1999] + bytes([data[1999] ^ 0xFF])  # always differs from the original
    resp = _patch(clinic_client, url, 1000, damaged, **{"Upload-Checksum": _checksum(data[1000:2000])})
    assert resp.status_code == 460
    assert resp.json()["type"] == "urn:vetpacs:error:checksum_mismatch"
    assert _offset(clinic_client, url) == 1000
    # The retry with the right bytes continues from the same offset, and the whole file is intact.
    resp = _patch(clinic_client, url, 1000, data[1000:], **{"Upload-Checksum": _checksum(data[1000:])})
    assert resp["Vetpacs-Ingest"].startswith("stored;")
    assert Upload.objects.get().sha256 == hashlib.sha256(data).hexdigest()


def test_an_unknown_checksum_algorithm_is_a_bad_request(clinic_client):
    url = _create(clinic_client, 10)
    resp = _patch(clinic_client, url, 0, b"0123456789", **{"Upload-Checksum": "md5 AAAA"})
    assert resp.status_code == 400 and "md5" in resp.json()["detail"]


@pytest.mark.requirement("R-6.2.1g")
@pytest.mark.requirement("R-6.1.4")
def test_an_interrupted_upload_resumes_from_the_committed_offset(clinic_client):
    data = _dicom()
    sha = hashlib.sha256(data).hexdigest()
    url = _create(clinic_client, len(data), sha256=sha)
    assert _patch(clinic_client, url, 0, data[:5000]).status_code == 204
    # A crash after the fsync but before the commit leaves bytes the offset does not claim.
    part = services.data_path(Upload.objects.get())
    with part.open("ab") as f:
        f.write(b"bytes of a chunk whose offset was never committed")
    offset = _offset(clinic_client, url)
    assert offset == 5000
    resp = _patch(clinic_client, url, offset, data[offset:])
    assert resp.status_code == 204
    assert resp["Vetpacs-Ingest"].startswith("stored;") and resp["Vetpacs-Ingest"].endswith(sha)


def test_creation_with_upload_takes_the_first_chunk_in_the_post(clinic_client):
    data = _dicom()
    resp = clinic_client.post(
        URL,
        data=data[:4000],
        content_type=OFFSET_STREAM,
        headers=TUS | {"Upload-Length": str(len(data))},
    )
    assert resp.status_code == 201 and resp["Upload-Offset"] == "4000"
    assert _patch(clinic_client, resp["Location"], 4000, data[4000:])["Vetpacs-Ingest"].startswith("stored;")


def test_termination_removes_the_upload_and_its_bytes(clinic_client):
    data = _dicom()
    url = _create(clinic_client, len(data))
    _patch(clinic_client, url, 0, data[:3000])
    part = services.data_path(Upload.objects.get())
    assert part.stat().st_size == 3000
    resp = clinic_client.delete(url, headers=TUS)
    assert resp.status_code == 204 and resp["Tus-Resumable"] == "1.0.0"
    assert not part.exists()
    assert clinic_client.head(url, headers=TUS).status_code == 404
    assert _patch(clinic_client, url, 3000, data[3000:]).status_code == 404
    assert AuditEvent.objects.filter(action="upload.terminated").count() == 1


@pytest.mark.requirement("R-6.2.1h")
def test_two_partial_uploads_are_joined_by_a_final_upload(clinic_client):
    data = _dicom()
    sha = hashlib.sha256(data).hexdigest()
    half = len(data) // 2
    urls = []
    for piece in (data[:half], data[half:]):
        url = _create(clinic_client, len(piece), **{"Upload-Concat": "partial"})
        assert _patch(clinic_client, url, 0, piece).status_code == 204
        assert clinic_client.head(url, headers=TUS)["Upload-Concat"] == "partial"
        urls.append(url)
    resp = clinic_client.post(
        URL,
        headers=TUS | {"Upload-Concat": "final;" + " ".join(urls), "Upload-Metadata": _metadata(sha256=sha)},
    )
    assert resp.status_code == 201
    assert resp["Upload-Offset"] == str(len(data))
    assert resp["Vetpacs-Ingest"].startswith("stored;") and resp["Vetpacs-Ingest"].endswith(sha)
    head = clinic_client.head(resp["Location"], headers=TUS)
    assert head["Upload-Concat"].startswith("final;") and head["Upload-Length"] == str(len(data))
    # tus: PATCH to a final upload is forbidden; the partial uploads are gone once joined.
    assert _patch(clinic_client, resp["Location"], len(data), b"x").status_code == 403
    assert clinic_client.head(urls[0], headers=TUS).status_code == 404
    assert not list(services.uploads_dir().glob("*.part"))


@pytest.mark.requirement("R-6.2.1h")
def test_a_final_upload_made_first_is_joined_when_its_last_partial_completes(clinic_client):
    data = _dicom()
    half = len(data) // 2
    pieces = (data[:half], data[half:])
    urls = [_create(clinic_client, len(p), **{"Upload-Concat": "partial"}) for p in pieces]
    final = clinic_client.post(URL, headers=TUS | {"Upload-Concat": "final;" + " ".join(urls)})
    assert final.status_code == 201 and "Upload-Offset" not in final
    # Parallel parts arrive in any order.
    assert _patch(clinic_client, urls[1], 0, pieces[1]).status_code == 204
    assert "Upload-Offset" not in clinic_client.head(final["Location"], headers=TUS)
    assert _patch(clinic_client, urls[0], 0, pieces[0]).status_code == 204
    head = clinic_client.head(final["Location"], headers=TUS)
    assert head["Upload-Offset"] == str(len(data)) and head["Vetpacs-Ingest"].startswith("stored;")


def test_a_final_upload_cannot_name_another_organisations_partial(clinic_client, other_clinic_client):
    url = _create(other_clinic_client, 10, **{"Upload-Concat": "partial"})
    resp = clinic_client.post(URL, headers=TUS | {"Upload-Concat": f"final;{url}"})
    assert resp.status_code == 400 and "not a partial upload here" in resp.json()["detail"]


def test_a_file_not_matching_its_declared_sha256_is_refused_and_nothing_stored(clinic_client):
    data = _dicom()
    url, last = _upload(clinic_client, data, 8000, sha256=hashlib.sha256(b"another file").hexdigest())
    assert last["Vetpacs-Ingest"].startswith("refused; reason=checksum_mismatch;")
    assert Instance.objects.count() == 0
    status = clinic_client.get(url).json()
    assert status["state"] == "refused" and "declared SHA-256" in status["reason"]
    assert AuditEvent.objects.filter(action="upload.refused").count() == 1


def test_a_file_that_is_not_dicom_is_refused_with_the_reason(clinic_client):
    data = b"%PDF-1.7 this is a report, not an image" * 10
    url, last = _upload(clinic_client, data, 100)
    assert last["Vetpacs-Ingest"].startswith("refused; reason=not_dicom;")
    status = clinic_client.get(url).json()
    assert status["reason_code"] == "not_dicom" and status["reason"]
    assert Instance.objects.count() == 0


def test_another_organisation_cannot_see_or_touch_an_upload(clinic_client, other_clinic_client):
    url = _create(clinic_client, 100)
    assert other_clinic_client.head(url, headers=TUS).status_code == 404
    assert other_clinic_client.get(url).status_code == 404
    assert _patch(other_clinic_client, url, 0, b"x" * 100).status_code == 404
    assert other_clinic_client.delete(url, headers=TUS).status_code == 404
    assert _offset(clinic_client, url) == 0


def test_an_anonymous_caller_is_unauthenticated(client, clinic_client):
    url = _create(clinic_client, 100)
    from django.test import Client

    anonymous = Client()
    resp = anonymous.post(URL, headers=TUS | {"Upload-Length": "100"})
    assert resp.status_code == 401 and resp["Tus-Resumable"] == "1.0.0"
    assert "Bearer" in resp["WWW-Authenticate"]
    assert anonymous.head(url, headers=TUS).status_code == 401
    assert _patch(anonymous, url, 0, b"x").status_code == 401


def test_an_upload_over_the_size_limit_is_refused(clinic_client, settings):
    settings.VETPACS_MAX_UPLOAD_BYTES = 1000
    resp = clinic_client.post(URL, headers=TUS | {"Upload-Length": "1001"})
    assert resp.status_code == 413 and "at most 1000" in resp.json()["detail"]
    url = _create(clinic_client, 100)
    resp = _patch(clinic_client, url, 0, b"x" * 101)
    assert resp.status_code == 413
    assert _offset(clinic_client, url) == 0


def test_an_unsupported_tus_version_is_a_failed_precondition(clinic_client):
    resp = clinic_client.post(URL, headers={"Tus-Resumable": "0.2.2", "Upload-Length": "10"})
    assert resp.status_code == 412 and resp["Tus-Version"] == "1.0.0"
    assert Upload.objects.count() == 0


def test_a_caller_without_credentials_is_refused_before_the_version_is_looked_at(client, db):
    resp = client.post(URL, headers={"Tus-Resumable": "0.2.2", "Upload-Length": "10"})
    assert resp.status_code == 401
    assert "Tus-Version" not in resp
    resp = client.post(URL, headers={"Authorization": "Bearer forged", **TUS, "Upload-Length": "10"})
    assert resp.status_code == 401
    assert Upload.objects.count() == 0


def test_a_chunk_must_be_sent_as_an_offset_octet_stream(clinic_client):
    url = _create(clinic_client, 10)
    resp = clinic_client.generic(
        "PATCH",
        url,
        data=b"0123456789",
        content_type="application/octet-stream",
        headers=TUS | {"Upload-Offset": "0"},
    )
    assert resp.status_code == 415
    assert json.loads(resp.content)["status"] == 415
