"""dicomweb-client, a DICOMweb client we did not write, drives the real platform process end to end."""

from __future__ import annotations

import numpy as np
import pytest
import requests
from dicomweb_client import DICOMwebClient

from tests.builders import dicom as build

pytestmark = [pytest.mark.slow, pytest.mark.requirement("R-8.2a"), pytest.mark.requirement("R-7.5a")]


@pytest.fixture(scope="module")
def dicomweb(platform_server) -> DICOMwebClient:
    return DICOMwebClient(url=platform_server.dicomweb_url, headers=platform_server.headers)


@pytest.fixture(scope="module")
def stored_study(dicomweb):
    """Three veterinary DX images of one study, stored once for the module through STOW-RS."""
    datasets = build.study(3, modality="DX", rows=128, columns=96)
    response = dicomweb.store_instances(datasets)
    return datasets, response


@pytest.mark.requirement("R-6.2.1a")
def test_a_large_instance_sent_in_chunks_is_stored(platform_server):
    """Past its chunk size (1 MB) dicomweb-client sends the body chunked, without a Content-Length."""
    client = DICOMwebClient(url=platform_server.dicomweb_url, headers=platform_server.headers)
    [ds] = build.study(1, modality="CR", rows=1024, columns=1024)  # 2 MB of pixels
    response = client.store_instances([ds])
    assert len(response.ReferencedSOPSequence) == 1
    assert "FailedSOPSequence" not in response
    [back] = client.retrieve_study(ds.StudyInstanceUID)
    assert np.array_equal(back.pixel_array, ds.pixel_array)


@pytest.mark.requirement("R-6.2.1a")
def test_store_instances_reports_every_instance_stored(stored_study):
    datasets, response = stored_study
    referenced = [str(item.ReferencedSOPInstanceUID) for item in response.ReferencedSOPSequence]
    assert sorted(referenced) == sorted(ds.SOPInstanceUID for ds in datasets)
    assert "FailedSOPSequence" not in response
    assert response.RetrieveURL.endswith(f"/dicomweb/studies/{datasets[0].StudyInstanceUID}")


def test_store_instances_into_the_wrong_study_is_refused_with_409(dicomweb):
    ds = build.image()
    with pytest.raises(requests.HTTPError) as exc:
        dicomweb.store_instances([ds], study_instance_uid=build.image().StudyInstanceUID)
    assert exc.value.response.status_code == 409


def test_storing_the_same_instances_again_succeeds(dicomweb, stored_study):
    datasets, _ = stored_study
    again = dicomweb.store_instances(datasets[:1])
    assert [str(i.ReferencedSOPInstanceUID) for i in again.ReferencedSOPSequence] == [
        datasets[0].SOPInstanceUID
    ]


def test_search_for_studies_finds_the_stored_study(dicomweb, stored_study):
    datasets, _ = stored_study
    found = dicomweb.search_for_studies(search_filters={"StudyInstanceUID": datasets[0].StudyInstanceUID})
    assert len(found) == 1
    assert found[0]["0020000D"]["Value"] == [datasets[0].StudyInstanceUID]
    assert found[0]["00100020"]["Value"] == [datasets[0].PatientID]


def test_search_for_series_and_instances_list_what_was_stored(dicomweb, stored_study):
    datasets, _ = stored_study
    study_uid = datasets[0].StudyInstanceUID
    series = dicomweb.search_for_series(study_instance_uid=study_uid)
    assert [s["0020000E"]["Value"][0] for s in series] == [datasets[0].SeriesInstanceUID]
    assert series[0]["00080060"]["Value"] == ["DX"]
    instances = dicomweb.search_for_instances(study_instance_uid=study_uid)
    assert sorted(i["00080018"]["Value"][0] for i in instances) == sorted(
        ds.SOPInstanceUID for ds in datasets
    )


def test_retrieve_instance_gives_back_the_image_and_the_owner_to_the_owning_clinic(dicomweb, stored_study):
    datasets, _ = stored_study
    original = datasets[1]
    got = dicomweb.retrieve_instance(
        original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID
    )
    assert got.SOPInstanceUID == original.SOPInstanceUID
    assert str(got.PatientName) == str(original.PatientName)
    assert np.array_equal(got.pixel_array, original.pixel_array)


def test_retrieve_study_metadata_lists_every_instance(dicomweb, stored_study):
    datasets, _ = stored_study
    metadata = dicomweb.retrieve_study_metadata(datasets[0].StudyInstanceUID)
    assert sorted(m["00080018"]["Value"][0] for m in metadata) == sorted(ds.SOPInstanceUID for ds in datasets)
    assert all(m["00280010"]["Value"] == [128] for m in metadata)


def test_retrieve_instance_frames_gives_the_raw_pixels(dicomweb, stored_study):
    datasets, _ = stored_study
    original = datasets[2]
    [frame] = dicomweb.retrieve_instance_frames(
        original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID, frame_numbers=[1]
    )
    assert frame == original.PixelData
