"""QIDO-RS (PS3.18 10.6): search_for_studies, search_for_series, search_for_instances."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse

from vetpacs.apps.archive import queries
from vetpacs.apps.archive.models import Instance, Series, Study
from vetpacs.apps.identity import services as identity
from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.dicom.identity import restore_json
from vetpacs.dicomweb import matching, search_cache
from vetpacs.dicomweb.matching import INSTANCE, SERIES, STUDY, Search, tag_key, vr_of
from vetpacs.dicomweb.responses import DICOM_JSON, dicom_json_response, error_response
from vetpacs.dicomweb.search_cache import cached_search

# PS3.18 Table 10.6.3-3/4/5: the attributes every result carries at each level (RetrieveURL,
# counts and SpecificCharacterSet are computed, not stored). StudyDescription and the veterinary
# patient attributes are added because every viewer's study list shows them.
STUDY_DEFAULTS = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDescription",
    "PatientSpeciesDescription",
    "PatientBreedDescription",
    "ResponsiblePerson",
)
SERIES_DEFAULTS = (
    "Modality",
    "SeriesDescription",
    "SeriesInstanceUID",
    "SeriesNumber",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "RequestAttributesSequence",
)
INSTANCE_DEFAULTS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
)
# Attributes that must be present (empty if unknown) in every result of their level.
_STUDY_REQUIRED = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
)
_SERIES_REQUIRED = ("Modality", "SeriesInstanceUID", "SeriesNumber")
_INSTANCE_REQUIRED = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber")

# Built once: the tags of each level's defaults, and the empty element of each required one
# (PS3.18 10.6.3: a default attribute with no value is returned empty). Results share these
# elements and never change them.
_STUDY_DEFAULT_TAGS = tuple(tag_key(k) for k in STUDY_DEFAULTS)
_STUDY_EMPTY = {tag_key(k): {"vr": vr_of(tag_key(k))} for k in _STUDY_REQUIRED}
_STUDY_COLUMNS = (
    "id",
    "organisation_id",
    "study_instance_uid",
    "modalities_in_study",
    "number_of_series",
    "number_of_instances",
    "dicom_json",
)
_MODALITIES = tag_key("ModalitiesInStudy")
_STUDY_SERIES_COUNT = tag_key("NumberOfStudyRelatedSeries")
_STUDY_INSTANCE_COUNT = tag_key("NumberOfStudyRelatedInstances")
_SPECIFIC_CHARACTER_SET = tag_key("SpecificCharacterSet")
# Values are decoded text in UTF-8 JSON whatever the stored character set was.
_UTF8 = {"vr": "CS", "Value": ["ISO_IR 192"]}
_ONLINE = {"vr": "CS", "Value": ["ONLINE"]}
_RETRIEVE_URL = tag_key("RetrieveURL")
_AVAILABILITY = tag_key("InstanceAvailability")
_STUDY_UID = tag_key("StudyInstanceUID")
_SERIES_UID = tag_key("SeriesInstanceUID")
# The first path segment of a search route; what precedes it is the service root ({+SERVICE}).
_SERVICE_ROOT = re.compile(r"^(.*?)/(studies|series|instances)(/|$)")
# PS3.18 8.3.4.4: a response cut short by the server says so in a Warning header.
_MORE_WARNING = '299 vetpacs: "There are additional results that can be requested with offset"'


@cached_search
def search_for_studies(request: HttpRequest) -> HttpResponse:
    search = _parse(request, STUDY, (STUDY,))
    principal = request.principal  # type: ignore[attr-defined]
    generation = getattr(request, "archive_generation", None)
    if generation is None:
        generation = queries.current_generation()
    studies = (
        queries.visible_studies(principal)
        .filter(*search.filters)
        .order_by(F("study_date").desc(nulls_last=True), F("study_time").desc(nulls_last=True), "-id")
    )
    # The page as (id, organisation, UID) only: most of its studies' results are usually kept already
    # (search_cache.fragments); only the others are loaded, decrypted and encoded.
    page, more = _page(studies.values_list("id", "organisation_id", "study_instance_uid"), search)
    root = _service_root(request)
    shape = (root, tuple(search.matched_tags), search.include_all, tuple(sorted(search.include_tags)))
    keys = [(pk, queries.may_see_identity(principal, org), *shape) for pk, org, _ in page]
    bodies = search_cache.fragments(keys, generation)
    missing = [key[0] for key, body in zip(keys, bodies, strict=True) if body is None]
    if missing:
        # Only what a result is built from: the other columns would be converted for nothing.
        rows = list(Study.objects.filter(id__in=missing).only(*_STUDY_COLUMNS))
        originals = _originals(request, rows)
        built = {s.id: _encoded(_study_json(s, search, originals, root)) for s in rows}
        keep: dict[search_cache.FragmentKey, bytes] = {}
        for i, key in enumerate(keys):
            if bodies[i] is None and key[0] in built:
                bodies[i] = keep[key] = built[key[0]]
        search_cache.keep_fragments(keep, generation)
    # A study deleted between the two statements is left out, as if the page had been read after.
    resp = HttpResponse(
        b"[" + b",".join(b for b in bodies if b is not None) + b"]",
        content_type=f"{DICOM_JSON}; charset=utf-8",
    )
    if more:
        resp["Warning"] = _MORE_WARNING
    return resp


@cached_search
def search_for_series(request: HttpRequest, study: str | None = None) -> HttpResponse:
    principal = request.principal  # type: ignore[attr-defined]
    series = queries.visible_series(principal).select_related("study")
    if study is not None:
        if not queries.visible_studies(principal).filter(study_instance_uid=study).exists():
            return _not_found(f"study {study}")
        series = series.filter(study__study_instance_uid=study)
        search = _parse(request, SERIES, (SERIES,))
    else:
        # PS3.18 10.6.1.2.2: searching all series may match on study attributes too.
        search = _parse(request, SERIES, (STUDY, SERIES))
    series = series.filter(*search.filters).order_by(
        "study_id", F("series_number").asc(nulls_last=True), "id"
    )
    page, more = _page(series, search)
    originals = _originals(request, [s.study for s in page])
    root = _service_root(request)
    results = []
    for s in page:
        # PS3.18 Table 10.6.3-4: {/series} also returns the study's default attributes.
        out = _study_json(s.study, search, originals, root, defaults=study is None)
        out.update(_series_json(s, search, root))
        results.append(_sorted(out))
    return _respond(results, more)


@cached_search
def search_for_instances(
    request: HttpRequest, study: str | None = None, series: str | None = None
) -> HttpResponse:
    principal = request.principal  # type: ignore[attr-defined]
    instances = queries.visible_instances(principal).select_related("series", "study")
    if series is not None:
        found = queries.visible_series(principal).filter(
            series_instance_uid=series, study__study_instance_uid=study
        )
        if not found.exists():
            return _not_found(f"series {series} of study {study}")
        instances = instances.filter(series__series_instance_uid=series)
        search = _parse(request, INSTANCE, (INSTANCE,))
    elif study is not None:
        if not queries.visible_studies(principal).filter(study_instance_uid=study).exists():
            return _not_found(f"study {study}")
        instances = instances.filter(study__study_instance_uid=study)
        search = _parse(request, INSTANCE, (SERIES, INSTANCE))
    else:
        search = _parse(request, INSTANCE, (STUDY, SERIES, INSTANCE))
    instances = instances.filter(*search.filters).order_by(
        "study_id", "series_id", F("instance_number").asc(nulls_last=True), "id"
    )
    page, more = _page(instances, search)
    originals = _originals(request, [i.study for i in page])
    root = _service_root(request)
    results = []
    for inst in page:
        # PS3.18 Table 10.6.3-5: the levels above the URL's come back with their defaults too.
        out = _study_json(inst.study, search, originals, root, defaults=study is None)
        out.update(_series_json(inst.series, search, root, defaults=series is None))
        out.update(_instance_json(inst, search, originals, root))
        results.append(_sorted(out))
    return _respond(results, more)


def _parse(request: HttpRequest, level: str, allowed: tuple[str, ...]) -> Search:
    _check_accept(request)
    return matching.parse_search(
        dict(request.GET.lists()),
        level=level,
        allowed_levels=allowed,
        organisation_ids=request.principal.organisation_ids,  # type: ignore[attr-defined]
    )


def _check_accept(request: HttpRequest) -> None:
    # PS3.18 8.7.3: this server answers searches in DICOM JSON only.
    accept = request.headers.get("Accept", "")
    if not accept:
        return
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if not any(t in (DICOM_JSON, "application/json", "*/*", "application/*") for t in types):
        raise VetpacsError(Errors.NOT_ACCEPTABLE, f"search results are {DICOM_JSON}; Accept was {accept!r}")


def _page(qs: QuerySet[Any], search: Search) -> tuple[list[Any], bool]:
    # One row more than asked tells whether another page exists, without a COUNT(*).
    rows = list(qs[search.offset : search.offset + search.limit + 1])
    return rows[: search.limit], len(rows) > search.limit


def _respond(results: list[dict[str, Any]], more: bool) -> HttpResponse:
    # PS3.18 8.3.4.4.1 as corrected by CP-2473: no match (also an offset past the end) is a
    # successful search, answered 200 with an empty array rather than a 204 with no body.
    resp = dicom_json_response(results)
    if more:
        resp["Warning"] = _MORE_WARNING
    return resp


def _encoded(result: dict[str, Any]) -> bytes:
    # As dicom_json_response encodes a whole answer, so the joined results are the same bytes.
    return json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _not_found(what: str) -> HttpResponse:
    # Another clinic's UID and a UID nobody has look the same: 404, never an empty list.
    return error_response(404, f"{what} not found", code=Errors.NOT_FOUND.code)


def _service_root(request: HttpRequest) -> str:
    m = _SERVICE_ROOT.match(request.path)
    return request.build_absolute_uri(m.group(1) if m else "")


def _originals(request: HttpRequest, studies: Iterable[Study]) -> dict[str, dict[str, Any]]:
    """Original owner attributes of the page's studies the caller may see unmasked (one query)."""
    principal = request.principal  # type: ignore[attr-defined]
    uids = sorted(
        {s.study_instance_uid for s in studies if queries.may_see_identity(principal, s.organisation_id)}
    )
    return identity.originals_for_studies(uids) if uids else {}


def _pick(source: dict[str, Any], keywords: Iterable[str], required: Iterable[str] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for keyword in keywords:
        tag = tag_key(keyword)
        if tag in source:
            out[tag] = source[tag]
    for keyword in required:
        tag = tag_key(keyword)
        # PS3.18 10.6.3: a default attribute with no value is returned empty (zero length).
        out.setdefault(tag, {"vr": vr_of(tag)})
    return out


def _extra(source: dict[str, Any], search: Search) -> dict[str, Any]:
    """includefield attributes (or all) and the attributes that were matched on, where present."""
    if search.include_all:
        return dict(source)
    wanted = search.include_tags | set(search.matched_tags)
    return {tag: source[tag] for tag in wanted if tag in source}


def _study_json(
    study: Study, search: Search, originals: dict[str, dict[str, Any]], root: str, *, defaults: bool = True
) -> dict[str, Any]:
    """The study's attributes: its defaults, or (below the study in the URL) only what was asked."""
    source = study.dicom_json
    if not defaults:
        out = _extra(source, search)
        return _sorted(_without_bulk(_restore(out, originals.get(study.study_instance_uid, {}), search)))
    out = dict(_STUDY_EMPTY)
    for tag in _STUDY_DEFAULT_TAGS:
        elem = source.get(tag)
        if elem is not None:
            out[tag] = elem
    if search.include_all or search.include_tags or search.matched_tags:
        # Only includefield and matched attributes can be binary: the defaults are all text.
        out.update(_without_bulk(_extra(source, search)))
    modalities = [m for m in study.modalities_in_study.split("\\") if m]
    out[_MODALITIES] = {"vr": "CS", "Value": modalities} if modalities else {"vr": "CS"}
    out[_STUDY_SERIES_COUNT] = {"vr": "IS", "Value": [study.number_of_series]}
    out[_STUDY_INSTANCE_COUNT] = {"vr": "IS", "Value": [study.number_of_instances]}
    out[_AVAILABILITY] = _ONLINE
    out[_SPECIFIC_CHARACTER_SET] = _UTF8
    out[_RETRIEVE_URL] = {"vr": "UR", "Value": [f"{root}/studies/{study.study_instance_uid}"]}
    found = originals.get(study.study_instance_uid)
    if found:
        out = _restore(out, found, search)
    return _sorted(out)


def _series_json(series: Series, search: Search, root: str, *, defaults: bool = True) -> dict[str, Any]:
    source = series.dicom_json
    if not defaults:
        return _without_bulk(_extra(source, search))
    out = _pick(source, SERIES_DEFAULTS, _SERIES_REQUIRED)
    out.update(_extra(source, search))
    study_uid = series.study.study_instance_uid
    out[_STUDY_UID] = {"vr": "UI", "Value": [study_uid]}
    out[tag_key("NumberOfSeriesRelatedInstances")] = {"vr": "IS", "Value": [series.number_of_instances]}
    out[_SPECIFIC_CHARACTER_SET] = {"vr": "CS", "Value": ["ISO_IR 192"]}
    out[_RETRIEVE_URL] = {
        "vr": "UR",
        "Value": [f"{root}/studies/{study_uid}/series/{series.series_instance_uid}"],
    }
    return _sorted(_without_bulk(out))


def _instance_json(
    inst: Instance, search: Search, originals: dict[str, dict[str, Any]], root: str
) -> dict[str, Any]:
    source = inst.metadata
    out = _pick(source, INSTANCE_DEFAULTS, _INSTANCE_REQUIRED)
    out.update(_extra(source, search))
    study_uid = inst.study.study_instance_uid
    series_uid = inst.series.series_instance_uid
    out[_STUDY_UID] = {"vr": "UI", "Value": [study_uid]}
    out[_SERIES_UID] = {"vr": "UI", "Value": [series_uid]}
    out[_AVAILABILITY] = {"vr": "CS", "Value": ["ONLINE"]}
    out[_SPECIFIC_CHARACTER_SET] = {"vr": "CS", "Value": ["ISO_IR 192"]}
    out[_RETRIEVE_URL] = {
        "vr": "UR",
        "Value": [f"{root}/studies/{study_uid}/series/{series_uid}/instances/{inst.sop_instance_uid}"],
    }
    out = _restore(out, originals.get(study_uid, {}), search)
    return _without_bulk(out)


def _restore(out: dict[str, Any], originals: dict[str, Any], search: Search) -> dict[str, Any]:
    """The owning clinic sees the owner's real attributes, but only those the result carries or asked for."""
    if not originals:
        return out
    wanted = {
        tag: value
        for tag, value in originals.items()
        if tag in out or search.include_all or tag in search.include_tags
    }
    return restore_json(out, wanted)


def _without_bulk(attrs: dict[str, Any]) -> dict[str, Any]:
    """QIDO results never carry bulk data: drop placeholders, also inside sequence items."""
    out: dict[str, Any] = {}
    for tag, elem in attrs.items():
        # Placeholders ("bulk:...") and small inline binaries alike: searches return no bulk data.
        if "BulkDataURI" in elem or "InlineBinary" in elem:
            continue
        if elem.get("vr") == "SQ" and elem.get("Value"):
            out[tag] = {**elem, "Value": [_without_bulk(item) for item in elem["Value"]]}
        else:
            out[tag] = elem
    return out


def _sorted(attrs: dict[str, Any]) -> dict[str, Any]:
    # PS3.18 F.2: attributes of a DICOM JSON object appear in tag order.
    return dict(sorted(attrs.items()))
