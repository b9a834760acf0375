"""QIDO-RS searches as a DICOMweb client sees them: matching keys, paging, returned attributes, tenancy."""

from __future__ import annotations

import pytest
from pydicom.uid import CTImageStorage, DigitalXRayImageStorageForPresentation, generate_uid

from tests.builders import dicom as build
from vetpacs.apps.accounts import services as account_services
from vetpacs.apps.archive.models import Series, Study
from vetpacs.apps.orgs import services

PATIENT_NAME, RESPONSIBLE_PERSON = "00100010", "00102297"
STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"


def _get(client, path: str, query: str = ""):
    resp = client.get(f"/dicomweb/{path}" + (f"?{query}" if query else ""))
    body = resp.json() if resp.status_code == 200 else None
    return resp, body


def _value(result: dict, tag: str):
    values = result.get(tag, {}).get("Value", [])
    return values[0] if values else None


def _name(result: dict, tag: str = PATIENT_NAME) -> str | None:
    value = _value(result, tag)
    return value["Alphabetic"] if value else None


@pytest.fixture
def corpus(ingest):
    """Three studies of the clinic, each labelled; returns {label: {study, series..., instances...}}."""
    a_study, b_study, c_study = generate_uid(), generate_uid(), generate_uid()
    a_series, b_ct, b_dx, c_series = generate_uid(), generate_uid(), generate_uid(), generate_uid()
    a = build.image(
        study_uid=a_study,
        series_uid=a_series,
        owner="Zhang",
        animal="Lucky",
        patient_id="PET-A",
        StudyDate="20260115",
        StudyTime="083000",
        AccessionNumber="ACC-A1",
        StudyID="11",
        ReferringPhysicianName="Vet^Li",
        SeriesNumber=1,
        InstanceNumber=1,
        PerformedProcedureStepStartDate="20260115",
        PerformedProcedureStepStartTime="083500",
    )
    b_common = {
        "study_uid": b_study,
        "owner": "李四",
        "animal": "咪咪",
        "patient_id": "PET-B",
        "species": "Feline",
        "breed": "Persian",
        "StudyDate": "20261120",
        "StudyTime": "153000",
        "AccessionNumber": "ACC-B2",
        "StudyID": "22",
        "ReferringPhysicianName": "Wang^Fang",
        "StudyDescription": "腹部 Abdomen",
    }
    b1 = build.image(series_uid=b_ct, modality="CT", SeriesNumber=2, InstanceNumber=1, **b_common)
    b2 = build.image(series_uid=b_ct, modality="CT", SeriesNumber=2, InstanceNumber=2, **b_common)
    b3 = build.image(series_uid=b_dx, modality="DX", SeriesNumber=3, InstanceNumber=1, **b_common)
    c = build.image(
        study_uid=c_study,
        series_uid=c_series,
        modality="US",
        owner="Smith",
        animal="Rex",
        patient_id="PET-C",
        StudyDate="20250601",
        StudyTime="200000",
        AccessionNumber="X-9",
        StudyID="33",
        ReferringPhysicianName="Chen^Jun",
    )
    ingest(a, b1, b2, b3, c)
    return {
        "A": {"study": a_study, "series": [a_series], "instances": [a.SOPInstanceUID]},
        "B": {
            "study": b_study,
            "series": [b_ct, b_dx],
            "instances": [b1.SOPInstanceUID, b2.SOPInstanceUID, b3.SOPInstanceUID],
        },
        "C": {"study": c_study, "series": [c_series], "instances": [c.SOPInstanceUID]},
    }


def _labels(corpus: dict, body: list[dict], tag: str = STUDY_UID) -> list[str]:
    by_uid = {}
    for label, uids in corpus.items():
        by_uid[uids["study"]] = label
        for i, uid in enumerate(uids["series"]):
            by_uid[uid] = f"{label}.s{i}"
        for i, uid in enumerate(uids["instances"]):
            by_uid[uid] = f"{label}.i{i}"
    return [by_uid[_value(r, tag)] for r in body]


STUDY_CASES = [
    ("", ["B", "A", "C"]),  # newest first
    ("StudyDate=20260115", ["A"]),
    ("00080020=20260115", ["A"]),  # by tag
    ("StudyDate=20260101-20261231", ["B", "A"]),
    ("StudyDate=-20251231", ["C"]),
    ("StudyDate=20260201-", ["B"]),
    ("StudyTime=0830", ["A"]),
    ("StudyTime=150000-160000", ["B"]),
    ("StudyTime=-1000", ["A"]),
    ("AccessionNumber=ACC-B2", ["B"]),
    ("AccessionNumber=ACC-*", ["B", "A"]),
    ("AccessionNumber=ACC-?1", ["A"]),
    ("AccessionNumber=acc-b2", []),  # case-sensitive outside person names
    ("ModalitiesInStudy=CT", ["B"]),
    ("ModalitiesInStudy=DX", ["B", "A"]),
    ("ModalitiesInStudy=US,CT", ["B", "C"]),
    ("ReferringPhysicianName=vet^li", ["A"]),
    ("ReferringPhysicianName=Wang*", ["B"]),
    ("ReferringPhysicianName=li&fuzzymatching=true", ["A"]),
    ("ReferringPhysicianName=JU&fuzzymatching=true", ["C"]),
    ("PatientName=Lucky", ["A"]),
    ("PatientName=lu*", ["A"]),
    ("PatientName=R?x", ["C"]),
    ("PatientName=咪咪", ["B"]),
    ("PatientName=*^咪*", ["B"]),
    ("PatientName=Zhang^Lucky", ["A"]),  # the owner's real name, through the blind index
    ("PatientName=Zhang", ["A"]),
    ("PatientName=李四", ["B"]),
    ("PatientName=Zhang^Rex", []),
    ("PatientName=luc&fuzzymatching=true", ["A"]),
    ("PatientName=smith&fuzzymatching=true", ["C"]),
    ("PatientID=PET-B", ["B"]),
    ("PatientID=PET-?", ["B", "A", "C"]),
    ("StudyID=22", ["B"]),
    ("PatientSpeciesDescription=Feline", ["B"]),
    ("PatientSpeciesDescription=Can*", ["A", "C"]),
    ("ResponsiblePerson=Zhang", ["A"]),
    ("ResponsiblePerson=zhang", ["A"]),  # the blind index forgives case
    ("ResponsiblePerson=李四", ["B"]),
    ("ResponsiblePerson=Nobody", []),
    ("StudyDescription=腹部*", ["B"]),
    ("PatientName=Lucky&StudyDate=20250101-20251231", []),  # keys combine with AND
]


@pytest.mark.requirement("R-6.2.4d")
@pytest.mark.parametrize(("query", "expected"), STUDY_CASES)
def test_studies_match_each_key_with_wildcards_ranges_and_fuzzy_names(clinic_client, corpus, query, expected):
    resp, body = _get(clinic_client, "studies", query)
    assert resp.status_code == 200, resp.content
    assert _labels(corpus, body) == expected


def test_study_instance_uid_matches_a_list_separated_by_comma_or_backslash(clinic_client, corpus):
    a, c = corpus["A"]["study"], corpus["C"]["study"]
    for sep in (",", "%5C"):
        _, body = _get(clinic_client, "studies", f"StudyInstanceUID={a}{sep}{c}")
        assert _labels(corpus, body) == ["A", "C"]


def test_a_pseudonym_matches_responsible_person_and_patient_name(clinic_client, corpus):
    a = Study.objects.get(study_instance_uid=corpus["A"]["study"])
    assert a.responsible_person.startswith("ANON")
    for query in (
        f"ResponsiblePerson={a.responsible_person}",
        "ResponsiblePerson=ANON*",
        f"PatientName={a.responsible_person}^Lucky",
    ):
        _, body = _get(clinic_client, "studies", query)
        assert "A" in _labels(corpus, body), query


SERIES_CASES = [
    ("series", "Modality=CT", ["B.s0"]),
    ("series", "Modality=DX", ["A.s0", "B.s1"]),
    ("series", "SeriesNumber=3", ["B.s1"]),
    ("series", "PerformedProcedureStepStartDate=20260101-20260131", ["A.s0"]),
    ("series", "PerformedProcedureStepStartTime=083500", ["A.s0"]),
    ("series", "PatientName=咪咪&Modality=CT", ["B.s0"]),  # study keys on {/series}
    ("series", "StudyDate=20250601", ["C.s0"]),
    ("studies/{B}/series", "", ["B.s0", "B.s1"]),
    ("studies/{B}/series", "Modality=DX", ["B.s1"]),
    ("studies/{B}/series", "SeriesInstanceUID={Bs0}", ["B.s0"]),
]


@pytest.mark.requirement("R-6.2.4d")
@pytest.mark.parametrize(("path", "query", "expected"), SERIES_CASES)
def test_series_match_at_every_level_of_the_url(clinic_client, corpus, path, query, expected):
    fill = {"B": corpus["B"]["study"], "Bs0": corpus["B"]["series"][0]}
    resp, body = _get(clinic_client, path.format(**fill), query.format(**fill))
    assert resp.status_code == 200, resp.content
    assert _labels(corpus, body, SERIES_UID) == expected


INSTANCE_CASES = [
    ("instances", f"SOPClassUID={CTImageStorage}", ["B.i0", "B.i1"]),
    ("instances", f"SOPClassUID={DigitalXRayImageStorageForPresentation}", ["A.i0", "B.i2"]),
    ("instances", "SOPInstanceUID={Bi1}", ["B.i1"]),
    ("instances", "InstanceNumber=2", ["B.i1"]),
    ("instances", "PatientID=PET-C", ["C.i0"]),
    ("instances", "Modality=US", ["C.i0"]),
    ("studies/{B}/instances", "", ["B.i0", "B.i1", "B.i2"]),
    ("studies/{B}/instances", "Modality=DX", ["B.i2"]),
    ("studies/{B}/series/{Bs0}/instances", "", ["B.i0", "B.i1"]),
    ("studies/{B}/series/{Bs0}/instances", "InstanceNumber=1", ["B.i0"]),
]


@pytest.mark.requirement("R-6.2.4d")
@pytest.mark.parametrize(("path", "query", "expected"), INSTANCE_CASES)
def test_instances_match_at_every_level_of_the_url(clinic_client, corpus, path, query, expected):
    fill = {"B": corpus["B"]["study"], "Bs0": corpus["B"]["series"][0], "Bi1": corpus["B"]["instances"][1]}
    resp, body = _get(clinic_client, path.format(**fill), query.format(**fill))
    assert resp.status_code == 200, resp.content
    assert _labels(corpus, body, SOP_UID) == expected


@pytest.mark.requirement("R-6.2.9.2c")
def test_a_study_result_carries_the_default_attributes_in_utf8_dicom_json(clinic_client, ingest):
    ds = build.image(owner="张三", animal="旺财", StudyDescription="胸部正位", modality="CR")
    ingest(ds)
    resp, body = _get(clinic_client, "studies")
    assert resp["Content-Type"].startswith("application/dicom+json")
    assert "旺财".encode() in resp.content, "Chinese must travel as UTF-8, not as \\u escapes"
    (study,) = body
    assert _value(study, "00080005") == "ISO_IR 192"
    assert _value(study, "00081190") == f"http://testserver/dicomweb/studies/{ds.StudyInstanceUID}"
    assert study["00080061"]["Value"] == ["CR"]  # ModalitiesInStudy
    assert (_value(study, "00201206"), _value(study, "00201208")) == (1, 1)  # series, instances
    assert _value(study, "00081030") == "胸部正位"
    for keyword_tag in (
        "00080020",
        "00080030",
        "00080050",
        "00080090",
        "00100020",
        "00100030",
        "00100040",
        "0020000D",
        "00200010",
    ):
        assert keyword_tag in study, keyword_tag
    assert list(study) == sorted(study), "attributes in tag order"


@pytest.mark.requirement("R-6.2.9.2c")
def test_series_and_instance_results_carry_their_defaults_and_no_bulk_data(clinic_client, corpus):
    b = corpus["B"]["study"]
    _, series = _get(clinic_client, f"studies/{b}/series")
    assert _value(series[0], "00201209") == 2  # NumberOfSeriesRelatedInstances
    assert _value(series[0], "00081190").endswith(f"/studies/{b}/series/{corpus['B']['series'][0]}")
    assert PATIENT_NAME not in series[0], "series of one study: the study's attributes are not repeated"
    _, all_series = _get(clinic_client, "series", "Modality=CT")
    assert _name(all_series[0]) == "李四^咪咪", "{/series} also carries the study's defaults"
    _, instances = _get(clinic_client, "instances", "includefield=all")
    for inst in instances:
        assert (_value(inst, "00280010"), _value(inst, "00280011")) == (64, 64)  # Rows, Columns
        assert "7FE00010" not in inst
        assert "BulkDataURI" not in str(inst) and "bulk:" not in str(inst)
        assert _value(inst, "00081190").endswith(f"/instances/{_value(inst, SOP_UID)}")


def test_includefield_adds_attributes_by_keyword_tag_list_or_all(clinic_client, corpus):
    _, plain = _get(clinic_client, "studies", "StudyID=11")
    assert "00102203" not in plain[0] and "00080080" not in plain[0]
    for query in (
        "includefield=PatientSexNeutered",
        "includefield=00102203",
        "includefield=StudyDescription,PatientSexNeutered",
        "includefield=StudyDescription&includefield=PatientSexNeutered",
        "includefield=all",
    ):
        _, body = _get(clinic_client, "studies", f"StudyID=11&{query}")
        assert _value(body[0], "00102203") == "ALTERED", query
    _, series = _get(clinic_client, "series", "Modality=US&includefield=BodyPartExamined")
    assert _value(series[0], "00180015") == "CHEST"


def test_paging_walks_newest_first_and_past_the_end_is_an_empty_success(clinic_client, ingest):
    dates = ["20260101", "20260301", "20260201", "20260501", "20260401"]
    ingest(*(build.image(StudyDate=d) for d in dates))
    seen = []
    for offset in (0, 2, 4):
        resp, body = _get(clinic_client, "studies", f"limit=2&offset={offset}")
        assert resp.status_code == 200
        seen += [_value(r, "00080020") for r in body]
        assert ("Warning" in resp) == (offset < 4), "a cut-short page says more can be requested"
    assert seen == sorted(dates, reverse=True)
    # PS3.18 8.3.4.4.1 (CP-2473): no match is 200 with an empty array, also past the end.
    resp, body = _get(clinic_client, "studies", "limit=2&offset=10")
    assert (resp.status_code, body) == (200, [])
    resp, body = _get(clinic_client, "studies", "PatientID=nobody")
    assert (resp.status_code, body) == (200, [])


@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        ("studies", "Foo=1", "Foo"),
        ("studies", "PatientNmae=Lucky", "PatientNmae"),
        ("studies", "SOPClassUID=1.2", "SOPClassUID"),  # an instance key at the study level
        ("studies", "StudyDate=2026", "StudyDate"),
        ("studies", "StudyDate=20261332", "StudyDate"),
        ("studies", "StudyTime=2500", "StudyTime"),
        ("series", "SeriesNumber=two", "SeriesNumber"),
        ("studies", "limit=-1", "limit"),
        ("studies", "offset=x", "offset"),
        ("studies", "fuzzymatching=maybe", "fuzzymatching"),
        ("studies", "includefield=NotAnAttribute", "NotAnAttribute"),
    ],
)
def test_a_bad_parameter_is_refused_with_400_naming_it(clinic_client, path, query, named):
    resp = clinic_client.get(f"/dicomweb/{path}?{query}")
    assert resp.status_code == 400
    assert named in resp.json()["detail"]


@pytest.mark.requirement("R-6.2.1c")
def test_another_clinic_finds_nothing_and_gets_404_for_a_study_url(other_clinic_client, corpus):
    b, b_ct = corpus["B"]["study"], corpus["B"]["series"][0]
    for path in ("studies", "series", "instances"):
        resp, body = _get(other_clinic_client, path, "PatientName=*")
        assert (resp.status_code, body) == (200, [])
    for path in (f"studies/{b}/series", f"studies/{b}/instances", f"studies/{b}/series/{b_ct}/instances"):
        assert other_clinic_client.get(f"/dicomweb/{path}").status_code == 404, path


def test_a_series_under_the_wrong_study_is_not_found(clinic_client, corpus):
    a, b_ct = corpus["A"]["study"], corpus["B"]["series"][0]
    assert clinic_client.get(f"/dicomweb/studies/{a}/series/{b_ct}/instances").status_code == 404


@pytest.mark.requirement("R-6.2.1c")
def test_the_owner_is_restored_for_the_owning_clinic_and_never_shown_to_others(
    clinic_client, other_clinic_client, ingest, monkeypatch
):
    ds = build.image(owner="王小明", animal="豆豆", PatientAddress="北京市朝阳区")
    ingest(ds)
    _, body = _get(clinic_client, "studies")
    assert (_name(body[0]), _name(body[0], RESPONSIBLE_PERSON)) == ("王小明^豆豆", "王小明")
    assert "00101040" not in body[0], "the address comes back only when asked for"
    _, body = _get(clinic_client, "studies", "includefield=PatientAddress")
    assert _value(body[0], "00101040") == "北京市朝阳区"
    other = other_clinic_client.get("/dicomweb/studies?includefield=all")
    assert "王小明".encode() not in other.content
    # A caller who may see the study but not the owner (a consulting centre) gets the pseudonym.
    from vetpacs.dicomweb import qido

    monkeypatch.setattr(qido.queries, "may_see_identity", lambda principal, organisation_id: False)
    _, body = _get(clinic_client, "instances", "includefield=all")
    assert _name(body[0]).startswith("ANON") and _name(body[0]).endswith("^豆豆")
    assert "王小明" not in str(body) and "北京市" not in str(body)


def test_the_study_search_costs_the_same_queries_for_one_study_or_many(
    clinic_client, ingest, django_assert_num_queries, monkeypatch
):
    # The clocks of the token cache and of the blocked addresses stand still: ingesting can take longer
    # than their few seconds on a slow machine, and the counts below are about the search, not about
    # when the token or the blocks are read again.
    monkeypatch.setattr(services, "_monotonic", lambda: 1000.0)
    monkeypatch.setattr(account_services, "_monotonic", lambda: 1000.0)
    ingest(build.image())
    # A cold process: the blocked addresses, the token, its last use, the chain's member clinics, the
    # archive generation, the page, its studies' rows and their owners.
    with django_assert_num_queries(8):
        _get(clinic_client, "studies")
    # The principal is now cached for a few seconds; the study's result is kept: the generation, the page.
    with django_assert_num_queries(2):
        _get(clinic_client, "studies", "limit=10")
    ingest(*(build.image(owner=f"Owner{i}") for i in range(8)))
    # The archive changed: the generation, the page, its rows, their owners, whatever the page's size.
    with django_assert_num_queries(4):
        _, body = _get(clinic_client, "studies")
    assert len(body) == 9
    # Matching a name also asks the identity store's blind index whether it is an owner's name.
    with django_assert_num_queries(5):
        _, body = _get(clinic_client, "studies", "PatientName=Lucky")
    assert len(body) == 9
    # The same search again, nothing changed since: the cached answer, after one look at the generation.
    with django_assert_num_queries(1):
        _, again = _get(clinic_client, "studies", "PatientName=Lucky")
    assert again == body
    # Another search showing the same studies: each study's result is kept, only the page is read.
    with django_assert_num_queries(3):
        _, other = _get(clinic_client, "studies", "PatientName=Lucky&limit=50")
    assert other == body


def test_a_thousand_studies_are_listed_whole_and_searched_by_name(clinic_client, ingest, clinic):
    ingest(build.image(owner="Zhang", animal="Lucky"))
    template = Study.objects.get()
    copies = []
    for i in range(1000):
        copy = Study(**{f.attname: getattr(template, f.attname) for f in Study._meta.concrete_fields})
        copy.pk = None
        copy.study_instance_uid = f"1.2.826.0.1.3680043.99.{i}"
        copy.accession_number = f"BULK{i:04d}"
        copies.append(copy)
    Study.objects.bulk_create(copies, batch_size=500)
    # (How fast: bench/dicomweb_throughput.py, QIDO-RS with 1000 studies stored.)
    resp, body = _get(clinic_client, "studies", "limit=1000")
    assert len(body) == 1000 and resp["Warning"]
    _, matched = _get(clinic_client, "studies", "PatientName=luc*&AccessionNumber=BULK09*")
    assert len(matched) == 100
    assert Series.objects.count() == 1


def test_a_kept_study_result_is_rebuilt_once_the_study_changes(clinic_client, other_clinic_client, ingest):
    first = build.image(owner="王小明", animal="豆豆")
    ingest(first)
    _, [before] = _get(clinic_client, "studies", "StudyDate=19000101-")
    assert _value(before, "00201208") == 1 and _name(before) == "王小明^豆豆"
    ingest(build.image(study_uid=first.StudyInstanceUID, owner="王小明", animal="豆豆"))
    # A different search (no whole answer cached) showing the same study sees it as it is now.
    _, [after] = _get(clinic_client, "studies", "StudyDate=19000102-")
    assert _value(after, "00201208") == 2 and _name(after) == "王小明^豆豆"
    # Another clinic's searches never show it, kept or not.
    _, theirs = _get(other_clinic_client, "studies", "StudyDate=19000102-")
    assert theirs == []
