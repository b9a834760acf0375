"""The study page (R-6.2.3a): panels, priors with compare links, audit of views, downloads, scoping."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from tests.builders.dicom import image, study
from vetpacs.apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def dog(ingest):
    """旺财: a thorax today (2 images) and an older abdomen (the prior)."""
    now = ingest(*study(2, animal="旺财", owner="张伟", patient_id="DOG-1", StudyDate="20261201",
                        PatientTelephoneNumbers="13800138000"))  # fmt: skip
    prior = ingest(image(animal="旺财", owner="张伟", patient_id="DOG-1", StudyDate="20250601",
                         StudyDescription="Abdomen", PatientTelephoneNumbers="13800138000"))  # fmt: skip
    return now[0].study_instance_uid, prior.study_instance_uid


@pytest.mark.requirement("R-6.2.3a")
@pytest.mark.requirement("R-6.2.4b")
def test_study_page_shows_animal_owner_series_and_the_prior_to_compare(clinic_user_client, dog):
    current, prior = dog
    response = clinic_user_client.get(f"/studies/{current}/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "旺财" in text and "Beagle" in text and "张伟" in text and "13800138000" in text
    assert f"/dicomweb/studies/{current}/series/" in text and "/thumbnail" in text
    assert f'data-study="{prior}"' in text
    assert f"StudyInstanceUIDs={current},{prior}&amp;hangingProtocolId=%40ohif/hpCompare" in text
    assert f"/dicomweb/studies/{current}/zip" in text
    assert f'href="/m/?study={current}"' in text


def test_a_study_made_after_the_one_shown_is_marked_later_among_the_animals_other_studies(
    clinic_user_client, dog
):
    current, prior = dog

    def entry(page_of: str, listed: str) -> str:
        text = clinic_user_client.get(f"/studies/{page_of}/").content.decode()
        return text.split(f'data-study="{listed}"')[1].split("</div>")[0]

    # Seen from the older study, today's thorax is the later one; seen from today's, the older is not.
    assert 'class="tag later">较新<' in entry(prior, current)
    assert "tag later" not in entry(current, prior)


@pytest.mark.requirement("R-7.3.4.5b")
def test_owner_is_masked_for_a_radiologist(radiologist_client, dog):
    text = radiologist_client.get(f"/studies/{dog[0]}/").content.decode()
    assert "张*" in text and "138****8000" in text and "张伟" not in text


@pytest.mark.requirement("R-7.3.3c")
def test_viewing_the_page_is_audited_and_shown_in_its_trail(clinic_user_client, dog):
    current = dog[0]
    clinic_user_client.get(f"/studies/{current}/")
    events = AuditEvent.objects.filter(action="study.viewed", target=f"study:{current}")
    assert events.count() == 1
    assert events.get().user_id == clinic_user_client.user.pk
    assert events.get().detail == {"page": "study"}
    clinic_user_client.get(f"/dicomweb/studies/{current}/zip")
    text = clinic_user_client.get(f"/studies/{current}/").content.decode()
    trail = text.split('id="audit-trail"')[1]
    assert trail.count("查看") == 2 and trail.count("下载") == 1


def test_another_clinic_gets_404_for_the_page_and_the_series_export(other_clinic_user_client, dog, ingest):
    from vetpacs.apps.archive.models import Series

    current = dog[0]
    series = Series.objects.filter(study__study_instance_uid=current).first()
    assert other_clinic_user_client.get(f"/studies/{current}/").status_code == 404
    url = f"/studies/{current}/series/{series.series_instance_uid}/images.zip"
    assert other_clinic_user_client.get(url).status_code == 404
    assert not AuditEvent.objects.filter(action="study.viewed", target=f"study:{current}").exists()


def test_unknown_study_is_404(clinic_user_client, db):
    assert clinic_user_client.get("/studies/1.2.3.4/").status_code == 404


@pytest.mark.requirement("R-6.2.4b")
@pytest.mark.parametrize(("fmt", "kind"), [("jpeg", "JPEG"), ("png", "PNG")])
def test_series_downloads_as_images_in_a_zip_and_is_audited(clinic_user_client, dog, fmt, kind):
    from vetpacs.apps.archive.models import Series

    current = dog[0]
    series = Series.objects.get(study__study_instance_uid=current)
    response = clinic_user_client.get(
        f"/studies/{current}/series/{series.series_instance_uid}/images.zip?format={fmt}"
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        names = zf.namelist()
        assert len(names) == 2
        img = Image.open(io.BytesIO(zf.read(names[0])))
        assert img.format == kind and img.size == (64, 64)
    event = AuditEvent.objects.get(action="study.downloaded", target=f"study:{current}")
    assert event.detail["format"] == fmt and event.detail["instances"] == 2


def test_series_download_in_an_unknown_format_is_refused_by_name(clinic_user_client, dog):
    from vetpacs.apps.archive.models import Series

    series = Series.objects.get(study__study_instance_uid=dog[0])
    response = clinic_user_client.get(
        f"/studies/{dog[0]}/series/{series.series_instance_uid}/images.zip?format=gif"
    )
    assert response.status_code == 400 and "gif" in response.content.decode()


def test_study_page_speaks_english_after_the_switch(clinic_user_client, dog):
    clinic_user_client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    text = clinic_user_client.get(f"/studies/{dog[0]}/").content.decode()
    assert "Other studies of this animal" in text and "Open in viewer" in text and "&amp;lng=en-US" in text
