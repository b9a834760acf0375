"""The worklist page (R-6.2.4d): every filter, scoping, paging, htmx partials, masking, query count."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from tests.builders.dicom import image
from vetpacs.apps.archive import kept

pytestmark = pytest.mark.django_db


def uids(response) -> list[str]:
    return re.findall(r'data-study="([^"]+)"', response.content.decode())


@pytest.fixture
def three(ingest):
    """旺财 (dog, DX, today, a phone), 咪咪 (cat, CT, 4 days ago), Lucky 豆豆 (dog, US, 20 days ago)."""
    today = timezone.localdate()
    day = lambda n: (today - dt.timedelta(days=n)).strftime("%Y%m%d")  # noqa: E731
    dog = ingest(
        image(animal="旺财", owner="张伟", patient_id="DOG-1", modality="DX", species="Canine",
              StudyDate=day(0), AccessionNumber="A-100", PatientTelephoneNumbers="13800138000")
    )  # fmt: skip
    cat = ingest(
        image(animal="咪咪", owner="王芳", patient_id="CAT-2", modality="CT", species="Feline",
              StudyDate=day(4), AccessionNumber="A-200", PatientTelephoneNumbers="13900139000")
    )  # fmt: skip
    old = ingest(
        image(animal="Lucky 豆豆", owner="Smith", patient_id="DOG-3", modality="US", species="Canine",
              StudyDate=day(20), AccessionNumber="A-300")
    )  # fmt: skip
    return {"dog": dog.study_instance_uid, "cat": cat.study_instance_uid, "old": old.study_instance_uid}


def test_worklist_lists_newest_first(clinic_user_client, three):
    assert uids(clinic_user_client.get("/")) == [three["dog"], three["cat"], three["old"]]


def test_worklist_needs_a_signed_in_user(client, three):
    response = client.get("/")
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.requirement("R-6.2.4d")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("accession=A-200", ["cat"]),
        ("patient_id=DOG", ["dog", "old"]),
        ("patient_id=CAT-2", ["cat"]),
        ("animal=旺", ["dog"]),  # hanzi prefix
        ("animal=财", ["dog"]),  # hanzi anywhere
        ("animal=wangcai", ["dog"]),  # full pinyin
        ("animal=wang", ["dog"]),  # pinyin prefix
        ("animal=WC", ["dog"]),  # initials, any case
        ("animal=mimi", ["cat"]),
        ("animal=doudou", ["old"]),  # pinyin of a mixed name
        ("animal=luc", ["old"]),  # Latin prefix
        ("phone=13800138000", ["dog"]),  # exact, through the blind index
        ("phone=1380013800", []),  # not a prefix match
        ("range=today", ["dog"]),
        ("range=3d", ["dog"]),
        ("range=7d", ["dog", "cat"]),
        ("modality=CT", ["cat"]),
        ("modality=US", ["old"]),
        ("species=Feline", ["cat"]),
        ("species=canine", ["dog", "old"]),
        ("report=unreported", ["dog", "cat", "old"]),
        ("report=document", []),
    ],
)
def test_each_filter_narrows_the_worklist(clinic_user_client, three, query, expected):
    assert uids(clinic_user_client.get("/?" + query)) == [three[k] for k in expected]


def pdf_report(tmp_path, study_instance_uid: str):
    """A PDF report of a study, as the gateway's watch folder converts it (Encapsulated PDF)."""
    from vetpacs.gateway.convert.attributes import StudyAttributes
    from vetpacs.gateway.convert.pdf import convert_pdf

    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
    attrs = StudyAttributes(
        study_instance_uid=study_instance_uid, patient_id="CAT-2", patient_name="王芳^咪咪",
        species="Feline", modality="DOC", series_description="诊断报告 Report",
    )  # fmt: skip
    return convert_pdf(path, attrs)


@pytest.mark.requirement("R-6.2.4d")
def test_report_filter_tells_a_study_with_a_stored_pdf_report_from_the_unreported(
    clinic_user_client, three, ingest, tmp_path
):
    ingest(pdf_report(tmp_path, three["cat"]))
    assert uids(clinic_user_client.get("/?report=document")) == [three["cat"]]
    assert uids(clinic_user_client.get("/?report=unreported")) == [three["dog"], three["old"]]
    text = clinic_user_client.get("/").content.decode()
    cat_row = re.search(rf'data-study="{three["cat"]}".*?</tr>', text, re.S).group(0)
    dog_row = re.search(rf'data-study="{three["dog"]}".*?</tr>', text, re.S).group(0)
    assert "有PDF/SR报告文档" in cat_row and "未报告" not in cat_row
    assert "未报告" in dog_row
    # Drafts and signed reports come with the reports module: not offered, and refused if asked for.
    assert 'value="signed"' not in text and 'value="draft"' not in text
    assert uids(clinic_user_client.get("/?report=signed")) == []


@pytest.mark.requirement("R-6.2.4d")
def test_date_range_filter_is_inclusive(clinic_user_client, three):
    today = timezone.localdate()
    start = (today - dt.timedelta(days=20)).isoformat()
    end = (today - dt.timedelta(days=4)).isoformat()
    assert uids(clinic_user_client.get(f"/?date_from={start}&date_to={end}")) == [three["cat"], three["old"]]


def test_filters_combine(clinic_user_client, three):
    assert uids(clinic_user_client.get("/?species=Canine&modality=US")) == [three["old"]]


def test_a_bad_date_is_named_and_nothing_is_listed(clinic_user_client, three):
    response = clinic_user_client.get("/?date_from=2026-13-45")
    assert response.status_code == 200
    text = response.content.decode()
    assert "date_from" in text and "筛选条件有误" in text
    assert uids(response) == []


def test_an_end_date_before_the_start_is_refused(clinic_user_client, three):
    text = clinic_user_client.get("/?date_from=2026-12-05&date_to=2026-12-01").content.decode()
    assert "The end date is before the start date" in text


def test_htmx_request_gets_only_the_results(clinic_user_client, three):
    response = clinic_user_client.get("/?modality=CT", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="results")
    text = response.content.decode()
    assert "<html" not in text and 'id="worklist"' in text
    assert uids(response) == [three["cat"]]


def test_filter_values_stay_in_the_page_and_the_paging_links(clinic_user_client, ingest, settings):
    from vetpacs.web import worklist

    for i in range(3):
        ingest(image(animal=f"狗{i}", patient_id=f"P-{i}", modality="DX"))
    worklist.PAGE_SIZE, old = 2, worklist.PAGE_SIZE
    try:
        text = clinic_user_client.get("/?modality=DX").content.decode()
    finally:
        worklist.PAGE_SIZE = old
    assert 'value="DX" selected' in text
    assert "modality=DX&amp;page=2" in text


@pytest.mark.requirement("R-6.2.4d")
def test_another_clinics_studies_never_appear(
    clinic_user_client, other_clinic_user_client, ingest, other_clinic
):
    mine = ingest(image(animal="旺财", patient_id="P-1"))
    theirs = ingest(image(animal="旺财", patient_id="P-1"), organisation=other_clinic)
    assert uids(clinic_user_client.get("/?animal=wangcai")) == [mine.study_instance_uid]
    assert uids(other_clinic_user_client.get("/?animal=wangcai")) == [theirs.study_instance_uid]
    # Naming the other clinic in the URL does not widen the scope.
    assert uids(clinic_user_client.get(f"/?clinic={other_clinic.id}")) == []


def test_chain_user_sees_member_clinics_and_can_pick_one(ingest, clinic):
    from tests.web.conftest import session_client
    from vetpacs.apps.orgs.services import create_organisation, create_user

    chain = create_organisation(name="连锁 Chain", kind="chain")
    branch = create_organisation(name="分院 Branch", kind="clinic", parent=chain)
    user = create_user(username="chain-boss", password="Chain-Passw0rd!", organisation=chain)
    in_branch = ingest(image(animal="Branch dog", patient_id="B-1"), organisation=branch)
    ingest(image(animal="Elsewhere", patient_id="E-1"), organisation=clinic)
    client = session_client(user)
    text = client.get("/").content.decode()
    assert 'id="f-clinic"' in text and "分院 Branch" in text
    assert uids(client.get(f"/?clinic={branch.id}")) == [in_branch.study_instance_uid]


@pytest.mark.requirement("R-7.3.4.5b")
def test_owner_is_shown_in_full_to_the_clinic_admin_and_masked_to_a_radiologist(
    clinic_user_client, radiologist_client, three
):
    full = clinic_user_client.get("/?animal=wangcai").content.decode()
    assert "张伟" in full and "13800138000" in full
    masked = radiologist_client.get("/?animal=wangcai").content.decode()
    assert "张*" in masked and "138****8000" in masked
    assert "张伟" not in masked and "13800138000" not in masked


def test_worklist_speaks_english_after_the_switch(clinic_user_client, three):
    assert "检查列表" in clinic_user_client.get("/").content.decode()
    response = clinic_user_client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert response.status_code == 302
    text = clinic_user_client.get("/").content.decode()
    assert "Worklist" in text and "Animal" in text and "检查列表" not in text


@pytest.mark.requirement("R-7.1.2a")
def test_worklist_page_query_count_does_not_grow_with_rows(
    clinic_user_client, ingest, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add(first: int, n: int) -> None:
        for i in range(first, first + n):
            phone = f"1380000{i:04d}"
            ingest(
                image(animal=f"宠物{i}", owner=f"主人{i}", patient_id=f"P-{i}", PatientTelephoneNumbers=phone)
            )

    add(0, 2)
    clinic_user_client.get("/")  # process caches (unwrapped keys) warm, as in a running server
    kept.clear_all()  # the table is built, not taken from the kept results
    with CaptureQueriesContext(connection) as two:
        clinic_user_client.get("/")
    add(2, 10)
    clinic_user_client.get("/")
    kept.clear_all()
    # session, user, memberships, chain members, generation, facets (2), count, page, owners: none per row.
    with django_assert_max_num_queries(13), CaptureQueriesContext(connection) as twelve:
        response = clinic_user_client.get("/")
    assert len(uids(response)) == 12
    assert len(twelve) == len(two)


def test_rows_link_to_the_study_page_ohif_and_the_light_viewer(clinic_user_client, three):
    text = clinic_user_client.get("/?animal=wangcai").content.decode()
    uid = three["dog"]
    assert f'href="/studies/{uid}/"' in text
    assert f"/viewer/viewer?StudyInstanceUIDs={uid}&amp;lng=zh" in text
    assert f'href="/m/?study={uid}"' in text


def test_a_user_whose_role_may_not_view_studies_sees_none(clinic, three):
    from tests.web.conftest import session_client
    from vetpacs.apps.orgs.services import create_user

    auditor = create_user(username="audit-he", password="Audit-Pw0rd!", organisation=clinic, role="auditor")
    assert uids(session_client(auditor).get("/")) == []


def test_header_links_the_administration_pages_a_role_may_open(clinic_user_client, radiologist_client, three):
    admin = clinic_user_client.get("/").content.decode()
    for href in ("/accounts/manage/", "/devices/", "/appkeys/", "/audit/"):
        assert f'href="{href}"' in admin
    reader = radiologist_client.get("/").content.decode()
    for href in ("/accounts/manage/", "/appkeys/", "/audit/"):
        assert f'href="{href}"' not in reader


@pytest.mark.requirement("R-7.1.2a")
def test_a_repeated_worklist_is_served_from_the_kept_table_until_the_archive_changes(
    clinic_user_client, ingest, three
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as built:
        first = clinic_user_client.get("/")
    with CaptureQueriesContext(connection) as kept_table:
        again = clinic_user_client.get("/")
    assert uids(again) == uids(first)
    # The second time, no count, page or owner query: the table was kept.
    newest_first = '"archive_study"."study_date" DESC'
    page_queries = lambda ctx: [q for q in ctx.captured_queries if newest_first in q["sql"]]  # noqa: E731
    assert page_queries(built) and not page_queries(kept_table)
    assert len(kept_table) < len(built)

    new = ingest(image(animal="新来的", owner="李雷", patient_id="NEW-1", modality="DX"))
    assert new.study_instance_uid in uids(clinic_user_client.get("/"))


@pytest.mark.requirement("R-7.3.4.5b")
def test_a_kept_table_never_shows_a_masked_user_the_owner_in_full(
    clinic_user_client, radiologist_client, three
):
    full = clinic_user_client.get("/?animal=wangcai").content.decode()
    assert "张伟" in full
    masked = radiologist_client.get("/?animal=wangcai").content.decode()
    assert "张伟" not in masked and "张*" in masked
    assert "张伟" in clinic_user_client.get("/?animal=wangcai").content.decode()
