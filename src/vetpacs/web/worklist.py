"""The worklist (检查列表, R-6.2.4d): the caller's studies, filtered from the URL, updated by htmx."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe

from vetpacs.apps.archive.kept import KeptByGeneration
from vetpacs.apps.archive.models import Instance, Study
from vetpacs.apps.archive.queries import (
    WorklistFilter,
    current_generation,
    worklist_facets,
    worklist_studies,
)
from vetpacs.apps.identity.services import owner_pseudonyms_matching
from vetpacs.apps.orgs.models import Organisation
from vetpacs.web import owners
from vetpacs.web.access import Viewer, viewer_for
from vetpacs.web.labels import ENGLISH, labels, ui_language

PAGE_SIZE = 50
# Quick picks of the exam date: today, the last 3 days, the last 7 days (today included).
RANGES = {"today": 1, "3d": 3, "7d": 7}
# Until the reports module exists, the only reports the archive can know of are report documents a
# modality or the gateway stored with the study: Encapsulated PDF (the gateway converts PDF reports,
# R-6.1.1c) and Structured Reports. "unreported" is a study without any; drafts and signed reports
# come with the reports module, so they are not offered as filters that could match nothing.
REPORT_DOCUMENT_SOP_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF Storage
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.35",  # Extensible SR
)
REPORT_STATUSES = ("unreported", "document")


def has_report_document() -> Exists:
    """True for a study with a stored PDF or SR report document (a subquery on the study's rows)."""
    return Exists(
        Instance.objects.filter(study_id=OuterRef("pk"), sop_class_uid__in=REPORT_DOCUMENT_SOP_CLASSES)
    )


# The query parameters the worklist keeps in its URL (bookmarkable), in the order of the form.
FILTER_FIELDS = (
    "accession", "patient_id", "animal", "phone", "range", "date_from", "date_to",
    "modality", "species", "clinic", "report",
)  # fmt: skip


class WorklistForm(forms.Form):
    accession = forms.CharField(required=False, max_length=64, strip=True)
    patient_id = forms.CharField(required=False, max_length=64, strip=True)
    animal = forms.CharField(required=False, max_length=100, strip=True)
    phone = forms.CharField(required=False, max_length=32, strip=True)
    range = forms.ChoiceField(required=False, choices=[("", "")] + [(k, k) for k in RANGES])
    date_from = forms.DateField(required=False, input_formats=["%Y-%m-%d", "%Y%m%d"])
    date_to = forms.DateField(required=False, input_formats=["%Y-%m-%d", "%Y%m%d"])
    modality = forms.RegexField(required=False, regex=r"^[A-Z0-9]{1,16}$", strip=True)
    species = forms.CharField(required=False, max_length=64, strip=True)
    clinic = forms.IntegerField(required=False, min_value=1)
    report = forms.ChoiceField(required=False, choices=[("", "")] + [(s, s) for s in REPORT_STATUSES])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "结束日期早于开始日期 The end date is before the start date")
        return data


def _filter(viewer: Viewer, data: dict[str, Any], today: dt.date) -> WorklistFilter:
    date_from, date_to = data.get("date_from"), data.get("date_to")
    if data.get("range"):
        date_from, date_to = today - dt.timedelta(days=RANGES[data["range"]] - 1), today
    pseudonyms = None
    if data.get("phone"):
        # Exact match through the identity store's blind index: the phone itself is never stored.
        pseudonyms = tuple(
            owner_pseudonyms_matching(
                organisation_ids=viewer.principal.organisation_ids, field="phone", value=data["phone"]
            )
        )
    clinic = data.get("clinic")
    return WorklistFilter(
        accession_number=data.get("accession") or "",
        patient_id=data.get("patient_id") or "",
        animal_name=data.get("animal") or "",
        owner_pseudonyms=pseudonyms,
        date_from=date_from,
        date_to=date_to,
        modality=data.get("modality") or "",
        species=data.get("species") or "",
        # Another organisation's id matches nothing: the query is scoped to the caller anyway.
        organisation_id=clinic,
    )


@login_required
def worklist(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for(request)
    if not viewer.principal.organisation_ids:
        # Signed in with roles that see no studies (an auditor): their first page is the dashboard.
        return redirect("dashboard")
    lang = ui_language(request)
    form = WorklistForm(request.GET)
    today = timezone.localdate()
    clinics = _clinics(viewer)
    kept = {k: request.GET[k] for k in FILTER_FIELDS if request.GET.get(k)}
    generation = current_generation()
    key = _results_key(viewer, request, lang, today)
    results = _kept_results.get(key, generation)
    if results is None:
        results = _results(request, viewer, form=form, lang=lang, today=today, clinics=clinics, kept=kept)
        _kept_results.put(key, generation, results)
    if request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target") == "results":
        return HttpResponse(results)
    context = {
        "L": labels(lang),
        "ui_lang": lang,
        "form": form,
        "values": kept,
        "results": mark_safe(results),  # noqa: S308 - our own template's output, escaped when rendered
        "facets": worklist_facets(viewer.principal),
        "clinics": clinics,
        "ranges": list(RANGES),
        "report_statuses": REPORT_STATUSES,
    }
    return render(request, "web/worklist.html", context)


# The results table as rendered, per process, under the archive's generation (apps/archive/kept.py):
# the staff of a clinic opening or refreshing the same worklist (R-7.1.2a: 1024 users at once) cost one
# lookup, not a query and 50 rendered rows each.
RESULTS_KEPT_ENTRIES = 256
RESULTS_KEPT_SECONDS = 30.0
_kept_results: KeptByGeneration[str] = KeptByGeneration(RESULTS_KEPT_ENTRIES, RESULTS_KEPT_SECONDS)


def _results_key(viewer: Viewer, request: HttpRequest, lang: str, today: dt.date) -> tuple[Any, ...]:
    """Everything the table depends on: whose studies, whose owners shown in full, words, day, filters."""
    orgs = tuple(sorted(viewer.principal.organisation_ids))
    return (
        orgs,
        tuple(org for org in orgs if viewer.may(owners.SENSITIVE, org)),
        lang,
        today,
        tuple(sorted((k, tuple(v)) for k, v in request.GET.lists())),
    )


def _results(
    request: HttpRequest,
    viewer: Viewer,
    *,
    form: WorklistForm,
    lang: str,
    today: dt.date,
    clinics: list[Organisation],
    kept: dict[str, str],
) -> str:
    if form.is_valid():
        qs = worklist_studies(viewer.principal, _filter(viewer, form.cleaned_data, today))
        qs = qs.annotate(has_report_document=has_report_document())
        if form.cleaned_data.get("report") == "unreported":
            qs = qs.filter(has_report_document=False)
        elif form.cleaned_data.get("report") == "document":
            qs = qs.filter(has_report_document=True)
    else:
        qs = Study.objects.none()
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "L": labels(lang),
        "ui_lang": lang,
        "form": form,
        "page": page,
        "rows": _rows(viewer, list(page.object_list), lang, today),
        "query": urlencode(kept),
        "clinics": clinics,
    }
    return render_to_string("web/_worklist_results.html", context, request)


def _clinics(viewer: Viewer) -> list[Organisation]:
    """The clinics a chain or centre user may pick from; one clinic has nothing to pick."""
    ids = viewer.principal.organisation_ids
    if len(ids) < 2:
        return []
    return list(Organisation.objects.filter(id__in=ids).order_by("name"))


def _rows(viewer: Viewer, studies: list[Study], lang: str, today: dt.date) -> list[dict[str, Any]]:
    clear = owners.owners_by_pseudonym({s.patient.owner_pseudonym for s in studies})
    L = labels(lang)  # noqa: N806 - the templates' name for the words
    out = []
    for s in studies:
        p = s.patient
        permitted = viewer.may(owners.SENSITIVE, s.organisation_id)
        out.append(
            {
                "study": s,
                "patient": p,
                "animal_name": p.animal_name or s.patient_name,
                "sex": sex_label(p.sex, p.sex_neutered, L),
                "age": age_label(p.birth_date, s.study_date or today, L),
                "owner": owners.shown(clear.get(p.owner_pseudonym), permitted=permitted),
                "modalities": s.modalities_in_study.replace("\\", " "),
                # An annotation of the page's query (no query per row); absent on a plain Study.
                "report_document": getattr(s, "has_report_document", False),
            }
        )
    return out


def sex_label(sex: str, neutered: str, L: dict[str, str]) -> str:  # noqa: N803
    """公(已绝育) / male, neutered: PS3.3 C.7.1.1 Patient's Sex and Patient's Sex Neutered."""
    word = {"M": L["male"], "F": L["female"]}.get(sex, "")
    state = {"ALTERED": L["neutered"], "UNALTERED": L["intact"]}.get(neutered, "")
    if not state:
        return word
    return f"{word}, {state}" if L["male"] == "male" else f"{word}({state})"


def age_label(birth: dt.date | None, on: dt.date, L: dict[str, str]) -> str:  # noqa: N803
    """Age at the exam: years, or months under two years (how vets speak of young animals)."""
    if birth is None or birth > on:
        return ""
    months = (on.year - birth.year) * 12 + on.month - birth.month - (on.day < birth.day)
    if months < 24:
        return L["months"].format(n=months)
    return L["years"].format(n=months // 12)


def is_english(request: HttpRequest) -> bool:
    return ui_language(request) == ENGLISH
