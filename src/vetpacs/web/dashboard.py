"""The home dashboard (工作台): what each role looks at first, counted over the caller's organisations only.

Radiologists: unreported exams of their clinics, their drafts, today's workload. Technicians and the
front desk: today's exams by modality, gateways offline, refused uploads. Organisation administrators:
storage by clinic and modality, gateways offline, users. Auditors: recent security events. A user
holding several roles sees each of their panels, in that order.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from vetpacs.apps.archive.models import Instance
from vetpacs.apps.archive.queries import visible_studies
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.devices import services as devices
from vetpacs.apps.devices import workflow as gateway_rules
from vetpacs.apps.devices.models import Gateway
from vetpacs.apps.orgs.models import Membership, Organisation
from vetpacs.apps.uploads.models import Upload
from vetpacs.web.access import Viewer, viewer_for
from vetpacs.web.labels import labels, ui_language
from vetpacs.web.worklist import has_report_document

CHART_DAYS = 14
LIST_ROWS = 10
UPLOAD_FAILURE_HOURS = 24

READING, DESK, ADMIN, SECURITY = "reading", "desk", "admin", "security"
PANELS = (READING, DESK, ADMIN, SECURITY)
# The panel each built-in role opens on (accounts.workflow.BUILTIN_ROLES).
ROLE_PANELS = {
    "radiologist": READING,
    "senior_radiologist": READING,
    "technician": DESK,
    "front_desk": DESK,
    "referring_vet": DESK,
    "operator": DESK,
    "org_admin": ADMIN,
    "platform_admin": ADMIN,
    "system_admin": ADMIN,
    "auditor": SECURITY,
    "audit_admin": SECURITY,
    "security_admin": SECURITY,
}
# What an auditor looks at first: sign-in failures, lockouts, blocks, refused keys, changes of rights.
SECURITY_ACTIONS = (
    "login.failed",
    "account.locked",
    "account.unlocked",
    "account.role_changed",
    "account.mfa_exempted",
    "account.disabled",
    "ip.blocked",
    "ip.unblocked",
    "appkey.request_refused",
    "appkey.revoked",
    "role.created",
    "role.modified",
    "role.deleted",
    "sso.configured",
    "audit.exported",
    "audit.purged",
)


def panel_of_permissions(permissions: frozenset[str]) -> str:
    """The panel of a custom role, read from what it may do."""
    if "member.manage" in permissions:
        return ADMIN
    if "report.write" in permissions:
        return READING
    if "audit.view" in permissions and "study.view" not in permissions:
        return SECURITY
    return DESK


def panels_for(
    roles: Mapping[int, Iterable[str]], permissions: Mapping[int, frozenset[str]], *, superuser: bool = False
) -> dict[str, frozenset[int]]:
    """panel -> the organisations it covers, in PANELS order (pure: no database)."""
    found: dict[str, set[int]] = defaultdict(set)
    for org_id, codes in roles.items():
        for code in codes:
            panel = ROLE_PANELS.get(code) or panel_of_permissions(permissions.get(org_id, frozenset()))
            found[panel].add(org_id)
    if superuser:
        found[ADMIN].update(permissions)
        found[SECURITY].update(permissions)
    return {p: frozenset(found[p]) for p in PANELS if found.get(p)}


# --- the panels' contents ---------------------------------------------------------------------------


def _studies(viewer: Viewer, orgs: frozenset[int]):  # noqa: ANN202 - a QuerySet of Study
    # Only organisations where the caller may also view studies (visible_studies is the scope).
    return visible_studies(viewer.principal).filter(organisation_id__in=orgs)


def _first_modality(modalities: str) -> str:
    return (modalities or "OT").split("\\")[0]


def _bar_option(categories: list[str], series: dict[str, list[int]], *, horizontal: bool = False) -> dict:
    """An ECharts option of stacked bars (plain JSON: no functions cross into the page)."""
    category_axis = {"type": "category", "data": categories}
    value_axis = {"type": "value", "minInterval": 1}
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0},
        "grid": {"left": 8, "right": 16, "top": 32, "bottom": 8, "containLabel": True},
        "xAxis": value_axis if horizontal else category_axis,
        "yAxis": category_axis if horizontal else value_axis,
        "series": [
            {"name": name, "type": "bar", "stack": "total", "data": data}
            for name, data in sorted(series.items())
        ],
    }


def reading_panel(viewer: Viewer, orgs: frozenset[int], today: dt.date) -> dict[str, Any]:
    studies = _studies(viewer, orgs)
    # Until the reports module exists a study counts as reported only by a stored PDF/SR document,
    # as the worklist's report filter does (its tile links there).
    unreported = (
        studies.filter(~has_report_document())
        .order_by("-study_date", "-study_time", "-id")
        .select_related("patient", "organisation")
    )
    per_hour: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    for when, created, modalities in studies.filter(study_date=today).values_list(
        "study_time", "created_at", "modalities_in_study"
    ):
        hour = when.hour if when else timezone.localtime(created).hour
        per_hour[_first_modality(modalities)][hour] += 1
    return {
        "todays_exams": sum(sum(v) for v in per_hour.values()),
        "unreported": unreported.count(),
        "unreported_rows": list(unreported[:LIST_ROWS]),
        "my_drafts": 0,
        "chart": _bar_option([f"{h:02d}" for h in range(24)], dict(per_hour)),
    }


def _offline_gateways(orgs: frozenset[int]) -> tuple[dict[str, int], list[Gateway]]:
    counts = devices.gateway_counts(orgs)
    threshold = timezone.now() - gateway_rules.offline_after(devices.heartbeat_interval_s())
    offline = (
        Gateway.objects.filter(organisation_id__in=list(orgs))
        .exclude(state__in=[Gateway.State.PENDING, Gateway.State.REVOKED])
        .exclude(state=Gateway.State.ONLINE, last_seen_at__gte=threshold)
        .select_related("organisation")
        .order_by("last_seen_at")
    )
    return counts, list(offline[:LIST_ROWS])


def desk_panel(viewer: Viewer, orgs: frozenset[int], today: dt.date) -> dict[str, Any]:
    by_modality: dict[str, int] = defaultdict(int)
    for modalities, n in (
        _studies(viewer, orgs)
        .filter(study_date=today)
        .values_list("modalities_in_study")
        .annotate(n=Count("id"))
        .order_by()
    ):
        by_modality[_first_modality(modalities)] += n
    names = sorted(by_modality)
    gateways, offline = _offline_gateways(orgs)
    since = timezone.now() - dt.timedelta(hours=UPLOAD_FAILURE_HOURS)
    refused = Upload.objects.filter(
        organisation_id__in=list(orgs), state=Upload.State.REFUSED, completed_at__gte=since
    ).order_by("-completed_at")
    return {
        "todays_exams": sum(by_modality.values()),
        "by_modality": [(m, by_modality[m]) for m in names],
        "chart": _bar_option(names, {"": [by_modality[m] for m in names]}, horizontal=True),
        "gateways": gateways,
        "offline_gateways": offline,
        "upload_failures": refused.count(),
        "upload_failure_rows": list(refused[:LIST_ROWS]),
    }


def admin_panel(viewer: Viewer, orgs: frozenset[int], today: dt.date) -> dict[str, Any]:
    names = dict(Organisation.objects.filter(id__in=list(orgs)).values_list("id", "name"))
    storage: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    total = 0
    for org_id, modality, size in (
        Instance.objects.filter(study__organisation_id__in=list(orgs & viewer.principal.organisation_ids))
        .values_list("study__organisation_id", "series__modality")
        .annotate(size=Sum("blob__size"))
        .order_by()
    ):
        storage[modality or "OT"][names.get(org_id, str(org_id))] += size or 0
        total += size or 0
    clinics = sorted({c for per in storage.values() for c in per})
    mib = {m: [round(per.get(c, 0) / 2**20, 1) for c in clinics] for m, per in storage.items()}
    users = (
        Membership.objects.filter(organisation_id__in=list(orgs), is_active=True)
        .values_list("organisation_id")
        .annotate(n=Count("user_id", distinct=True))
        .order_by()
    )
    since = today - dt.timedelta(days=CHART_DAYS - 1)
    per_day: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day, modalities, n in (
        _studies(viewer, orgs)
        .filter(study_date__gte=since, study_date__lte=today)
        .values_list("study_date", "modalities_in_study")
        .annotate(n=Count("id"))
        .order_by()
    ):
        per_day[_first_modality(modalities)][day.isoformat()] += n
    days = [(since + dt.timedelta(days=i)).isoformat() for i in range(CHART_DAYS)]
    gateways, offline = _offline_gateways(orgs)
    user_rows = sorted((names.get(org, str(org)), n) for org, n in users)
    return {
        "storage_bytes": total,
        "storage_chart": _bar_option(clinics, mib, horizontal=True),
        "storage_rows": [
            (
                c,
                [(m, storage[m].get(c, 0)) for m in sorted(storage)],
                sum(storage[m].get(c, 0) for m in storage),
            )
            for c in clinics
        ],
        "storage_modalities": sorted(storage),
        "gateways": gateways,
        "offline_gateways": offline,
        "users": sum(n for _, n in user_rows),
        "user_rows": user_rows,
        "chart": _bar_option(
            [d[5:] for d in days], {m: [per_day[m].get(d, 0) for d in days] for m in per_day}
        ),
    }


def security_panel(viewer: Viewer, orgs: frozenset[int], today: dt.date) -> dict[str, Any]:
    # An auditor of the platform organisation sees every organisation's events (as on /audit/).
    everyone = Organisation.objects.filter(id__in=list(orgs), kind=Organisation.Kind.PLATFORM).exists()
    events = AuditEvent.objects.filter(Q(action__in=SECURITY_ACTIONS) | ~Q(result="ok"))
    if not everyone:
        events = events.filter(organisation_id__in=list(orgs))
    now = timezone.now()
    counts = events.aggregate(
        failed_logins=Count("id", filter=Q(action="login.failed", at__gte=now - dt.timedelta(hours=24))),
        locked=Count("id", filter=Q(action="account.locked", at__gte=now - dt.timedelta(days=7))),
    )
    return {**counts, "events": list(events.order_by("-id")[: LIST_ROWS * 2])}


BUILDERS = {READING: reading_panel, DESK: desk_panel, ADMIN: admin_panel, SECURITY: security_panel}


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    viewer = viewer_for(request)
    lang = ui_language(request)
    today = timezone.localdate()
    covered = panels_for(viewer.roles, viewer.permissions, superuser=request.user.is_superuser)
    panels = {name: BUILDERS[name](viewer, orgs, today) for name, orgs in covered.items()}
    context: dict[str, Any] = {
        "L": labels(lang),
        "ui_lang": lang,
        "nav": "dashboard",
        "panels": panels,
        "charts": {
            f"chart-{name}-{key}": value
            for name, panel in panels.items()
            for key, value in panel.items()
            if key.endswith("chart")
        },
        "today": today,
        "upload_failure_hours": UPLOAD_FAILURE_HOURS,
    }
    return render(request, "web/dashboard.html", context)
