"""The auditor's page: search the audit log by actor, action, object and time; export what is found."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_date

from vetpacs.apps.audit import export
from vetpacs.apps.audit import services as audit
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.orgs.auth import has_permission
from vetpacs.apps.orgs.models import Organisation
from vetpacs.apps.orgs.services import principal_for_user

PAGE_SIZE = 50
VIEW, EXPORT = "audit.view", "audit.export"


def auditable_organisations(request: HttpRequest, code: str) -> set[int] | None:
    """Organisations whose events the user may see with this permission; None means every one
    (an auditor of the platform organisation). 404 for a user with the permission nowhere."""
    principal = principal_for_user(request.user)
    if principal is None:
        raise Http404("no organisation")
    allowed = {
        org_id for org_id in principal.organisation_ids if has_permission(principal.user_id, org_id, code)
    }
    if not allowed:
        raise Http404("not an auditor")
    if Organisation.objects.filter(id__in=allowed, kind=Organisation.Kind.PLATFORM).exists():
        return None
    return allowed


def _day(value: str) -> dt.datetime | None:
    day = parse_date(value or "")
    return timezone.make_aware(dt.datetime.combine(day, dt.time())) if day else None


def search(request: HttpRequest, organisation_ids: set[int] | None) -> tuple[QuerySet[AuditEvent], dict]:
    g = request.GET
    filters = {k: g.get(k, "").strip() for k in ("actor", "action", "target", "result", "since", "until")}
    since, until = _day(filters["since"]), _day(filters["until"])
    qs = export.events(
        since=since, until=until + dt.timedelta(days=1) if until else None, organisation_ids=organisation_ids
    )
    if filters["actor"]:
        qs = qs.filter(Q(actor__icontains=filters["actor"]) | Q(user_id__in=_user_ids(filters["actor"])))
    if filters["action"]:
        qs = qs.filter(action__startswith=filters["action"])
    if filters["target"]:
        qs = qs.filter(target__icontains=filters["target"])
    if filters["result"]:
        qs = qs.filter(result=filters["result"])
    return qs, filters


def _user_ids(text: str) -> list[int]:
    from django.contrib.auth import get_user_model  # noqa: PLC0415

    return list(get_user_model().objects.filter(username__icontains=text).values_list("id", flat=True)[:100])


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    organisation_ids = auditable_organisations(request, VIEW)
    qs, filters = search(request, organisation_ids)
    fmt = request.GET.get("format")
    principal = principal_for_user(request.user)
    assert principal is not None  # auditable_organisations checked it
    if fmt:
        if fmt not in export.FORMATS:
            return HttpResponse(
                f"unknown format {fmt!r}; use csv or json", status=400, content_type="text/plain"
            )
        auditable_organisations(request, EXPORT)
        audit.record(
            "audit.exported",
            organisation_id=principal.primary_organisation_id,
            user_id=principal.user_id,
            ip=request.META.get("REMOTE_ADDR"),
            detail={"format": fmt, "filters": filters},
        )
        content_type = "text/csv; charset=utf-8" if fmt == "csv" else "application/json; charset=utf-8"
        resp = StreamingHttpResponse(export.render(qs, fmt), content_type=content_type)
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        resp["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
        return resp
    page = Paginator(qs.order_by("-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    audit.record(
        "audit.searched",
        organisation_id=principal.primary_organisation_id,
        user_id=principal.user_id,
        ip=request.META.get("REMOTE_ADDR"),
        detail={k: v for k, v in filters.items() if v},
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/search.html",
        {"page": page, "filters": filters, "query": query.urlencode(), "nav": "audit"},
    )
