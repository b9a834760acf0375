"""The study page (检查详情): animal and owner, series, priors, report and audit trail, actions (R-6.2.3a)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from typing import Any
from urllib.parse import quote

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from vetpacs.apps.archive import blobs
from vetpacs.apps.archive.models import Instance, Series, Study
from vetpacs.apps.archive.queries import prior_studies, study_for_page
from vetpacs.apps.audit import group_commit
from vetpacs.apps.audit import services as audit
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.watermark import services as watermark
from vetpacs.dicom import frames as F
from vetpacs.dicom import render as dicom_render
from vetpacs.web import owners
from vetpacs.web.access import Viewer, viewer_for
from vetpacs.web.labels import ENGLISH, labels, ui_language
from vetpacs.web.worklist import age_label, sex_label

# The audit trail shown on the page: who looked at and took away this study.
TRAIL_ACTIONS = ("study.viewed", "study.downloaded")
TRAIL_LENGTH = 20  # the latest; the whole record is on the audit page (/audit/)
IMAGE_FORMATS = {"jpeg": dicom_render.JPEG, "png": dicom_render.PNG}
# A series export renders every image: more than this is a job for the DICOM ZIP, not a page click.
MAX_EXPORT_IMAGES = 500


def ohif_url(study_uids: list[str], lang: str, *, compare: bool = False) -> str:
    """OHIF with one study, or two side by side with OHIF's comparison hanging protocol (R-6.2.3a)."""
    url = "/viewer/viewer?StudyInstanceUIDs=" + quote(",".join(study_uids), safe=",")
    if compare:
        url += "&hangingProtocolId=" + quote("@ohif/hpCompare")
    return url + ("&lng=en-US" if lang == ENGLISH else "&lng=zh")


def _study_or_404(viewer: Viewer, study_instance_uid: str) -> Study:
    study = study_for_page(viewer.principal, study_instance_uid)
    if study is None:
        # Another clinic's study and a study that does not exist read the same (no probing).
        raise Http404("no such study")
    return study


def _event(request: HttpRequest, viewer: Viewer, study: Study, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "organisation_id": study.organisation_id,
        "user_id": viewer.user_id,
        "actor": viewer.principal.label,
        "ip": request.META.get("REMOTE_ADDR"),
        "target": f"study:{study.study_instance_uid}",
        "detail": detail,
    }


def _record(request: HttpRequest, viewer: Viewer, action: str, study: Study, **detail: Any) -> AuditEvent:
    return audit.record(action, **_event(request, viewer, study, detail))


@login_required
@require_GET
def study_page(request: HttpRequest, study_instance_uid: str) -> HttpResponse:
    viewer = viewer_for(request)
    study = _study_or_404(viewer, study_instance_uid)
    lang = ui_language(request)
    L = labels(lang)  # noqa: N806 - the templates' name for the words
    # A view changes nothing: its event shares a commit with concurrent views (audit.group_commit),
    # and the page goes out only once the event is committed.
    group_commit.record_durably("study.viewed", **_event(request, viewer, study, {"page": "study"}))
    patient = study.patient
    permitted = viewer.may(owners.SENSITIVE, study.organisation_id)
    owner = owners.shown(owners.owners_by_pseudonym({patient.owner_pseudonym}).get(patient.owner_pseudonym),
                         permitted=permitted)  # fmt: skip
    series = list(study.series.order_by("series_number", "id"))
    priors = list(prior_studies(viewer.principal, study)[:20])
    trail = list(
        AuditEvent.objects.filter(target=f"study:{study.study_instance_uid}", action__in=TRAIL_ACTIONS)
        .order_by("-id")
        .values("at", "action", "actor", "detail")[:TRAIL_LENGTH]
    )
    for event in trail:
        event["action_label"] = L.get(event["action"], event["action"])
        event["what"] = _trail_detail(event["detail"])
    context = {
        "L": L,
        "ui_lang": lang,
        "study": study,
        "patient": patient,
        "owner": owner,
        "sex": sex_label(patient.sex, patient.sex_neutered, L),
        "age": age_label(patient.birth_date, study.study_date, L) if study.study_date else "",
        "series": series,
        "priors": [
            {
                "study": p,
                "compare_url": ohif_url([study.study_instance_uid, p.study_instance_uid], lang, compare=True),
                # Newest first, so a study made after this one comes at the top: say so.
                "later": _when(p) > _when(study),
            }
            for p in priors
        ],
        "trail": trail,
        "ohif_url": ohif_url([study.study_instance_uid], lang),
        "light_url": "/m/?study=" + quote(study.study_instance_uid),
        "zip_url": f"/dicomweb/studies/{study.study_instance_uid}/zip",
    }
    return render(request, "web/study.html", context)


def _when(study: Study) -> tuple[dt.date, dt.time]:
    """When a study was made, for ordering; a study without a date or time counts as the earliest."""
    return (study.study_date or dt.date.min, study.study_time or dt.time.min)


def _trail_detail(detail: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in sorted(detail.items()) if v not in (None, "")]
    return ", ".join(parts)


@login_required
@require_GET
def series_images(request: HttpRequest, study_instance_uid: str, series_instance_uid: str) -> HttpResponse:
    """Every image of a series rendered as JPEG or PNG, in one ZIP (for a slide or a message)."""
    viewer = viewer_for(request)
    study = _study_or_404(viewer, study_instance_uid)
    fmt = request.GET.get("format", "jpeg")
    if fmt not in IMAGE_FORMATS:
        return HttpResponse(
            f"未知格式 Unknown format {fmt!r}: jpeg or png",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    series = Series.objects.filter(study=study, series_instance_uid=series_instance_uid).first()
    if series is None:
        raise Http404("no such series")
    rows = list(
        Instance.objects.filter(series=series, rows__isnull=False)
        .select_related("blob")
        .order_by("instance_number", "id")[: MAX_EXPORT_IMAGES + 1]
    )
    if not rows:
        raise Http404("the series has no images")
    if len(rows) > MAX_EXPORT_IMAGES:
        return HttpResponse(
            f"序列超过 {MAX_EXPORT_IMAGES} 张图像，请下载 DICOM ZIP。"
            f" The series has more than {MAX_EXPORT_IMAGES} images: download the DICOM ZIP.",
            status=413,
            content_type="text/plain; charset=utf-8",
        )
    media = IMAGE_FORMATS[fmt]
    # Recorded first: each picture's trace mark names this event (R-7.3.4.3b).
    event = _record(
        request,
        viewer,
        "study.downloaded",
        study,
        format=fmt,
        series=series_instance_uid,
        instances=len(rows),
    )
    buffer = io.BytesIO()
    store = blobs.store()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for number, row in enumerate(rows, start=1):
            with store.open(row.blob.key) as stream:
                src = F.open_pixels(stream)
                for frame in range(src.number_of_frames):
                    arr = F.decode_frame(src, frame)
                    body = dicom_render.render(arr, src.header, media_type=media)
                    body = watermark.mark_download(body, media, event=event)
                    suffix = f"-{frame + 1}" if src.number_of_frames > 1 else ""
                    zf.writestr(f"{number:04d}{suffix}.{'jpg' if fmt == 'jpeg' else 'png'}", body)
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="series-{series.series_number or 0}-{fmt}.zip"'
    return response
