"""The home dashboard: tiles counted over the caller's studies only, and the chart's data."""

from __future__ import annotations

import json
import re

import pytest
from django.utils import timezone

from tests.builders.dicom import image

pytestmark = pytest.mark.django_db


def test_dashboard_counts_todays_and_unreported_exams_of_the_clinic_only(
    clinic_user_client, ingest, other_clinic
):
    today = timezone.localdate().strftime("%Y%m%d")
    ingest(image(patient_id="P-1", StudyDate=today, modality="DX"))
    ingest(image(patient_id="P-2", StudyDate="20200101", modality="CT"))
    ingest(image(patient_id="P-3", StudyDate=today, modality="CT"), organisation=other_clinic)
    text = clinic_user_client.get("/dashboard/").content.decode()
    assert re.search(r'id="tile-today"[^>]*><div class="n">1<', text)
    assert re.search(r'id="tile-unreported"[^>]*><div class="n">2<', text)
    chart = json.loads(
        re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', text).group(1)
    )
    assert [s["name"] for s in chart["series"]] == ["DX"]
    assert chart["series"][0]["data"][-1] == 1 and len(chart["days"]) == 14


def test_gateway_tile_is_hidden_without_the_devices_app(clinic_user_client):
    from vetpacs.web import dashboard

    text = clinic_user_client.get("/dashboard/").content.decode()
    assert ('id="tile-gateways"' in text) == (dashboard.gateway_counts(frozenset()) is not None)
