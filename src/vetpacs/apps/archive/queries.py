"""Read-side queries of the archive, always scoped to what the caller may see."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from django.db import connection
from django.db.models import OuterRef, Q, QuerySet, Subquery

from vetpacs.apps.archive.generation import archive_generation
from vetpacs.apps.archive.models import ArchiveGeneration, Instance, Series, Study
from vetpacs.apps.archive.search_keys import normalise_query
from vetpacs.apps.orgs.services import Principal

__all__ = [
    "WorklistFilter",
    "archive_generation",
    "current_generation",
    "may_see_identity",
    "prior_studies",
    "study_for_page",
    "visible_instances",
    "visible_series",
    "visible_studies",
    "worklist_facets",
    "worklist_studies",
]


def visible_studies(principal: Principal) -> QuerySet[Study]:
    return Study.objects.filter(organisation_id__in=principal.organisation_ids)


def visible_series(principal: Principal) -> QuerySet[Series]:
    return Series.objects.filter(study__organisation_id__in=principal.organisation_ids)


def visible_instances(principal: Principal) -> QuerySet[Instance]:
    return Instance.objects.filter(study__organisation_id__in=principal.organisation_ids)


def may_see_identity(principal: Principal, organisation_id: int) -> bool:
    """Owner identity goes back only to the owning clinic's own users (and its chain)."""
    return organisation_id in principal.organisation_ids


# --- the worklist (R-6.2.4d) -------------------------------------------------------------------------


@dataclass(frozen=True)
class WorklistFilter:
    """What the worklist is filtered by; empty values do not filter."""

    accession_number: str = ""
    patient_id: str = ""
    animal_name: str = ""
    # Owners found by the identity store's blind index (exact phone); None: no phone filter.
    owner_pseudonyms: tuple[str, ...] | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    modality: str = ""
    species: str = ""
    organisation_id: int | None = None


def worklist_studies(principal: Principal, flt: WorklistFilter) -> QuerySet[Study]:
    """The caller's studies matching flt, newest first, with what a worklist row shows in one query."""
    qs = visible_studies(principal)
    if flt.organisation_id is not None:
        qs = qs.filter(organisation_id=flt.organisation_id)
    if flt.accession_number:
        # The exam number is the accession number or the modality's Study ID.
        qs = qs.filter(Q(accession_number=flt.accession_number) | Q(study_id=flt.accession_number))
    if flt.patient_id:
        qs = qs.filter(dicom_patient_id__istartswith=flt.patient_id)
    if flt.animal_name:
        qs = qs.filter(_animal_name_matches(flt.animal_name))
    if flt.owner_pseudonyms is not None:
        qs = qs.filter(patient__owner_pseudonym__in=list(flt.owner_pseudonyms))
    if flt.date_from:
        qs = qs.filter(study_date__gte=flt.date_from)
    if flt.date_to:
        qs = qs.filter(study_date__lte=flt.date_to)
    if flt.modality:
        # Backslash-separated list: match a whole value, not a substring (CT must not match "OCT").
        m = flt.modality
        qs = qs.filter(
            Q(modalities_in_study=m)
            | Q(modalities_in_study__startswith=m + "\\")
            | Q(modalities_in_study__endswith="\\" + m)
            | Q(modalities_in_study__contains="\\" + m + "\\")
        )
    if flt.species:
        qs = qs.filter(Q(species_description__iexact=flt.species) | Q(patient__species_code=flt.species))
    first_body_part = (
        Series.objects.filter(study_id=OuterRef("pk"))
        .exclude(body_part_examined="")
        .order_by("series_number", "id")
        .values("body_part_examined")[:1]
    )
    return (
        qs.select_related("patient", "organisation")
        .annotate(body_part_examined=Subquery(first_body_part))
        .order_by("-study_date", "-study_time", "-id")
    )


def _animal_name_matches(text: str) -> Q:
    """Hanzi or Latin as typed (prefix or anywhere), or its pinyin / initials (R-6.2.4d fuzzy match)."""
    match = Q(patient__animal_name__icontains=text)
    key = normalise_query(text)
    if key:
        match |= Q(patient__animal_name_key__contains=key)
    return match


def worklist_facets(principal: Principal) -> dict[str, list[str]]:
    """The modalities and species present in the caller's studies, for the filter drop-downs."""
    studies = visible_studies(principal)
    species = sorted({s for s in studies.values_list("species_description", flat=True).distinct() if s})
    modalities = sorted(
        {
            m
            for value in studies.values_list("modalities_in_study", flat=True).distinct()
            for m in value.split("\\")
            if m
        }
    )
    return {"species": species, "modalities": modalities}


def study_for_page(principal: Principal, study_instance_uid: str) -> Study | None:
    """One visible study with its patient and organisation, or None (another clinic's is None too)."""
    return (
        visible_studies(principal)
        .select_related("patient", "organisation")
        .filter(study_instance_uid=study_instance_uid)
        .first()
    )


def prior_studies(principal: Principal, study: Study) -> QuerySet[Study]:
    """Other visible studies of the same animal, newest first (for comparison, R-6.2.3a)."""
    return (
        visible_studies(principal)
        .filter(patient_id=study.patient_id)
        .exclude(pk=study.pk)
        .order_by("-study_date", "-study_time", "-id")
    )


# --- the archive's generation, read on every cached answer ------------------------------------------


def current_generation() -> int:
    """archive_generation() as one plain statement: caches of the index (WADO-RS, QIDO-RS) read it on
    every request they answer, and building the ORM query would cost more than the answer."""
    with connection.cursor() as cursor:
        cursor.execute(_generation_sql())
        row = cursor.fetchone()
    return int(row[0]) if row else 0


@functools.cache
def _generation_sql() -> str:
    table = connection.ops.quote_name(ArchiveGeneration._meta.db_table)
    return f"SELECT value FROM {table} WHERE id = 1"  # noqa: S608 - a table name, no user input
