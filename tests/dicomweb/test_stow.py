"""STOW-RS: what a DICOMweb sender sees when it stores instances (PS3.18 10.5)."""

from __future__ import annotations

import uuid

import pytest

from tests.builders import dicom as build
from vetpacs.apps.archive.models import Instance, Study
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.core.errors import DimseStatus

STOW = "/dicomweb/studies"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
RETRIEVE_URL = "00081190"
FAILURE_REASON = "00081197"
SOP_INSTANCE_UID = "00081155"


def multipart(*parts: bytes, boundary: str | None = None, part_type: str = "application/dicom") -> tuple:
    """A multipart/related body of the given parts and its Content-Type."""
    boundary = boundary or f"vetpacs-{uuid.uuid4().hex}"
    body = b""
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def stow(client, *parts: bytes, url: str = STOW, **kwargs):
    body, content_type = multipart(*parts, **kwargs)
    return client.post(url, data=body, content_type=content_type)


def uids(resp, sequence: str) -> list[str]:
    return [item[SOP_INSTANCE_UID]["Value"][0] for item in resp.json().get(sequence, {}).get("Value", [])]


def leftover_temporary_files(settings) -> list:
    incoming = settings.VETPACS_INCOMING_DIR
    return list(incoming.iterdir()) if incoming.exists() else []


@pytest.mark.requirement("R-6.2.1a")
@pytest.mark.requirement("R-8.2a")
@pytest.mark.requirement("R-6.2.9.1")
def test_a_study_sent_in_one_request_is_stored_and_each_instance_has_a_retrieve_url(clinic_client, settings):
    datasets = build.study(3)
    resp = stow(clinic_client, *(build.to_bytes(ds) for ds in datasets))
    assert resp.status_code == 200, resp.content
    assert resp["Content-Type"].startswith("application/dicom+json")
    body = resp.json()
    study_uid = datasets[0].StudyInstanceUID
    assert body[RETRIEVE_URL]["Value"][0] == f"http://testserver/dicomweb/studies/{study_uid}"
    assert sorted(uids(resp, REFERENCED_SOP_SEQUENCE)) == sorted(ds.SOPInstanceUID for ds in datasets)
    item = body[REFERENCED_SOP_SEQUENCE]["Value"][0]
    assert item["00081150"]["Value"][0] == datasets[0].SOPClassUID
    assert item[RETRIEVE_URL]["Value"][0].startswith(
        f"http://testserver/dicomweb/studies/{study_uid}/series/"
    )
    assert FAILED_SOP_SEQUENCE not in body
    assert Study.objects.get(study_instance_uid=study_uid).number_of_instances == 3
    assert leftover_temporary_files(settings) == []


def test_the_boundary_may_be_quoted_and_the_body_large(clinic_client):
    ds = build.image(rows=1024, columns=1024)  # 2 MB: crosses several read chunks
    body, _ = multipart(build.to_bytes(ds), boundary="a quoted:boundary")
    resp = clinic_client.post(
        STOW,
        data=body,
        content_type='multipart/related; boundary="a quoted:boundary"; type=application/dicom',
    )
    assert resp.status_code == 200, resp.content
    assert Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()


def test_sending_the_same_instances_again_is_an_idempotent_success(clinic_client):
    datasets = build.study(2)
    parts = [build.to_bytes(ds) for ds in datasets]
    assert stow(clinic_client, *parts).status_code == 200
    again = stow(clinic_client, *parts)
    assert again.status_code == 200
    assert len(uids(again, REFERENCED_SOP_SEQUENCE)) == 2
    assert Instance.objects.count() == 2


@pytest.mark.requirement("R-7.5a")
def test_a_part_that_is_not_dicom_fails_alone_and_the_answer_is_202(clinic_client, settings):
    good = build.image()
    resp = stow(clinic_client, build.to_bytes(good), b"this is a text file, not an image")
    assert resp.status_code == 202
    assert uids(resp, REFERENCED_SOP_SEQUENCE) == [good.SOPInstanceUID]
    [failure] = resp.json()[FAILED_SOP_SEQUENCE]["Value"]
    assert failure[FAILURE_REASON]["Value"] == [DimseStatus.CANNOT_UNDERSTAND]
    assert "part 2" in resp["Warning"] and "not_dicom" in resp["Warning"]
    assert Instance.objects.count() == 1
    assert leftover_temporary_files(settings) == []


def test_an_invalid_instance_is_named_in_the_failed_sequence_and_nothing_is_stored(clinic_client):
    ds = build.image(SOPClassUID="1.2.3.4.5")
    resp = stow(clinic_client, build.to_bytes(ds))
    assert resp.status_code == 409
    [failure] = resp.json()[FAILED_SOP_SEQUENCE]["Value"]
    assert failure[SOP_INSTANCE_UID]["Value"] == [ds.SOPInstanceUID]
    assert failure[FAILURE_REASON]["Value"] == [DimseStatus.SOP_CLASS_NOT_SUPPORTED]
    assert "unknown_sop_class" in resp["Warning"]
    assert Instance.objects.count() == 0


def test_study_level_stow_refuses_instances_of_another_study(clinic_client):
    mine, other = build.image(), build.image()
    resp = stow(
        clinic_client,
        build.to_bytes(mine),
        build.to_bytes(other),
        url=f"{STOW}/{mine.StudyInstanceUID}",
    )
    assert resp.status_code == 202
    assert uids(resp, REFERENCED_SOP_SEQUENCE) == [mine.SOPInstanceUID]
    [failure] = resp.json()[FAILED_SOP_SEQUENCE]["Value"]
    assert failure[SOP_INSTANCE_UID]["Value"] == [other.SOPInstanceUID]
    assert failure[FAILURE_REASON]["Value"] == [DimseStatus.STUDY_UID_MISMATCH]
    assert resp.json()[RETRIEVE_URL]["Value"][0].endswith(f"/studies/{mine.StudyInstanceUID}")
    assert not Instance.objects.filter(sop_instance_uid=other.SOPInstanceUID).exists()


def test_another_clinics_uid_cannot_be_overwritten(clinic_client, other_clinic_client):
    ds = build.image()
    assert stow(other_clinic_client, build.to_bytes(ds)).status_code == 200
    resp = stow(clinic_client, build.to_bytes(ds))
    assert resp.status_code == 409
    assert "uid_in_other_organisation" in resp["Warning"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/dicom",
        "application/json",
        'multipart/related; type="application/dicom+json"; boundary=x',
        'multipart/related; type="application/dicom+xml"; boundary=x',
        'multipart/related; type="image/jpeg"; boundary=x',
    ],
)
def test_other_media_types_are_refused_with_415(clinic_client, content_type):
    resp = clinic_client.post(STOW, data=b"--x\r\n\r\n{}\r\n--x--\r\n", content_type=content_type)
    assert resp.status_code == 415
    assert "application/dicom" in resp.json()["detail"]


def test_a_body_over_the_limit_is_refused_with_413_before_anything_is_stored(clinic_client, settings):
    settings.VETPACS_MAX_UPLOAD_BYTES = 10_000
    resp = stow(clinic_client, build.to_bytes(build.image(rows=128, columns=128)))
    assert resp.status_code == 413
    assert "10000" in resp.json()["detail"]
    assert Instance.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "empty"),
        (b"no boundary anywhere in this body", "boundary"),
        (b"--b--\r\n", "no parts"),
        (b"--b\r\nContent-Type application/dicom\r\n\r\nxx\r\n--b--\r\n", "malformed"),
    ],
)
def test_a_malformed_body_is_refused_with_400_naming_the_problem(clinic_client, settings, body, problem):
    content_type = 'multipart/related; type="application/dicom"; boundary=b'
    # CONTENT_TYPE as an extra too: the test client drops content_type for an empty body.
    resp = clinic_client.post(STOW, data=body, content_type=content_type, CONTENT_TYPE=content_type)
    assert resp.status_code == 400
    assert problem in resp.json()["detail"]
    assert leftover_temporary_files(settings) == []


def test_a_body_cut_off_mid_part_keeps_the_whole_parts_and_reports_the_cut_one(clinic_client, settings):
    first, second = build.image(), build.image()
    body, content_type = multipart(build.to_bytes(first), build.to_bytes(second))
    resp = clinic_client.post(STOW, data=body[: len(body) - 3000], content_type=content_type)
    assert resp.status_code == 202
    assert uids(resp, REFERENCED_SOP_SEQUENCE) == [first.SOPInstanceUID]
    assert "cut off" in resp["Warning"]
    assert not Instance.objects.filter(sop_instance_uid=second.SOPInstanceUID).exists()
    assert leftover_temporary_files(settings) == []


def test_without_a_token_nothing_is_stored(client, db):
    resp = stow(client, build.to_bytes(build.image()))
    assert resp.status_code == 401
    assert Instance.objects.count() == 0


def test_one_audit_event_summarises_the_request(clinic_client):
    stow(clinic_client, *(build.to_bytes(ds) for ds in build.study(2)), b"junk")
    [event] = AuditEvent.objects.filter(action="stow.completed")
    assert event.result == "partial"
    assert (event.detail["stored"], event.detail["failed"]) == (2, 1)
    assert AuditEvent.objects.filter(action="instance.stored").count() == 2


def test_an_instance_written_without_preamble_is_still_stored(clinic_client):
    # What pydicom's dcmwrite sends for a dataset built in code (dicomweb-client, highdicom).
    ds = build.image()
    part10 = build.to_bytes(ds)
    assert part10[128:132] == b"DICM"
    resp = stow(clinic_client, part10[132:])
    assert resp.status_code == 200, resp.content
    assert Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()
