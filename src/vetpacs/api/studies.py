"""JSON endpoints for studies (the worklist issue extends these)."""

from __future__ import annotations

import datetime as dt

from django.http import HttpRequest
from ninja import Schema

from vetpacs.api.main import api
from vetpacs.apps.archive.queries import visible_studies


class StudyRead(Schema):
    study_instance_uid: str
    study_date: dt.date | None
    accession_number: str
    study_description: str
    dicom_patient_id: str
    patient_name: str
    species_description: str
    modalities_in_study: str
    number_of_series: int
    number_of_instances: int


class StudyPage(Schema):
    count: int
    items: list[StudyRead]


@api.get("/studies", response=StudyPage, tags=["studies"])
def list_studies(request: HttpRequest, limit: int = 50, offset: int = 0) -> dict:
    qs = visible_studies(request.principal).order_by("-study_date", "-id")  # type: ignore[attr-defined]
    limit = max(1, min(limit, 500))
    return {"count": qs.count(), "items": list(qs[offset : offset + limit])}
