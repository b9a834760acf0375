"""Cached QIDO-RS answers are never stale and never cross organisations."""

import pytest

from tests.builders import dicom as build
from vetpacs.apps.archive import services


def _uids(client, query=""):
    resp = client.get("/dicomweb/studies" + query)
    assert resp.status_code == 200
    return {r["0020000D"]["Value"][0] for r in resp.json()}


@pytest.mark.requirement("R-7.1.2a")
def test_a_repeated_search_sees_a_study_stored_in_between(clinic_client, ingest):
    first = build.image()
    ingest(first)
    assert _uids(clinic_client) == {first.StudyInstanceUID}
    assert _uids(clinic_client) == {first.StudyInstanceUID}  # cached
    second = build.image()
    ingest(second)
    assert _uids(clinic_client) == {first.StudyInstanceUID, second.StudyInstanceUID}


def test_every_index_change_moves_the_generation_the_cache_checks(ingest, django_capture_on_commit_callbacks):
    from vetpacs.apps.archive.queries import archive_generation

    start = archive_generation()
    result = ingest(build.image())
    after_ingest = archive_generation()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.compress(result.instance_id)
    assert start < after_ingest < archive_generation()


def test_the_same_search_by_another_clinic_is_not_served_from_the_first_clinics_cache(
    clinic_client, other_clinic_client, ingest
):
    ds = build.image()
    ingest(ds)
    assert _uids(clinic_client, "?PatientID=PET-001") == {ds.StudyInstanceUID}
    assert _uids(other_clinic_client, "?PatientID=PET-001") == set()
