"""The studies page (a minimal list until the worklist issue) and helpers for the viewer."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from vetpacs.apps.archive.queries import visible_studies
from vetpacs.apps.orgs.services import principal_for_user


@login_required
def studies(request: HttpRequest) -> HttpResponse:
    principal = principal_for_user(request.user)
    qs = visible_studies(principal).order_by("-study_date", "-id")
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(request, "web/studies.html", {"page": page})
