"""The home dashboard (工作台): today's exams, unreported, drafts, gateways offline, storage, a chart."""

from __future__ import annotations

import datetime as dt
import importlib.util
from collections import defaultdict
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from vetpacs.apps.archive.models import Instance
from vetpacs.apps.archive.queries import visible_studies
from vetpacs.web.access import viewer_for
from vetpacs.web.labels import labels, ui_language

CHART_DAYS = 14


def gateway_counts(organisation_ids: frozenset[int]) -> dict[str, int] | None:
    """{online, offline, ...} from the devices app when it is installed; None hides the tile."""
    if importlib.util.find_spec("vetpacs.apps.devices") is None:
        return None
    try:
        from vetpacs.apps.devices import services as devices  # noqa: PLC0415 - optional app
    except ImportError:
        return None
    counts = getattr(devices, "gateway_counts", None)
    return dict(counts(organisation_ids)) if counts else None


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for(request)
    lang = ui_language(request)
    today = timezone.localdate()
    studies = visible_studies(viewer.principal)
    since = today - dt.timedelta(days=CHART_DAYS - 1)
    per_day: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day, modalities, n in (
        studies.filter(study_date__gte=since, study_date__lte=today)
        .values_list("study_date", "modalities_in_study")
        .annotate(n=Count("id"))
        .order_by()
    ):
        for modality in (modalities or "OT").split("\\")[:1]:  # a study counts once, by its first modality
            per_day[modality][day.isoformat()] += n
    days = [(since + dt.timedelta(days=i)).isoformat() for i in range(CHART_DAYS)]
    chart = {
        "days": [d[5:] for d in days],
        "series": [
            {"name": m, "type": "bar", "stack": "exams", "data": [per_day[m].get(d, 0) for d in days]}
            for m in sorted(per_day)
        ],
    }
    storage_bytes = (
        Instance.objects.filter(study__organisation_id__in=viewer.principal.organisation_ids).aggregate(
            total=Sum("blob__size")
        )["total"]
        or 0
    )
    context: dict[str, Any] = {
        "L": labels(lang),
        "ui_lang": lang,
        "nav": "dashboard",
        "todays_exams": studies.filter(study_date=today).count(),
        # Every study is unreported until the reports module exists.
        "unreported": studies.count(),
        "my_drafts": 0,
        "gateways": gateway_counts(viewer.principal.organisation_ids),
        "storage_bytes": storage_bytes,
        "chart": chart,
        "today": today,
    }
    return render(request, "web/dashboard.html", context)
