"""The DICOMweb route table (PS3.18 URL tree); each handler named after its transaction."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from vetpacs.dicomweb import qido, stow, wado
from vetpacs.dicomweb.auth import dicomweb_view

S, R, I, F = "<str:study>", "<str:series>", "<str:instance>", "<str:frames>"  # noqa: E741


def _get(fn):
    return dicomweb_view(("GET",))(fn)


@dicomweb_view(("GET", "POST"))
def studies(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return stow.store_instances(request)
    return qido.search_for_studies(request)


@dicomweb_view(("GET", "POST"))
def study(request: HttpRequest, study: str) -> HttpResponse:
    if request.method == "POST":
        return stow.store_instances(request, study)
    return wado.retrieve_study(request, study)


urlpatterns = [
    path("studies", studies),
    path(f"studies/{S}", study),
    path(f"studies/{S}/zip", _get(wado.retrieve_study_zip)),
    path(f"studies/{S}/metadata", _get(wado.retrieve_study_metadata)),
    path(f"studies/{S}/rendered", _get(wado.retrieve_study_rendered)),
    path(f"studies/{S}/thumbnail", _get(wado.retrieve_study_thumbnail)),
    path(f"studies/{S}/series", _get(qido.search_for_series)),
    path(f"studies/{S}/instances", _get(qido.search_for_instances)),
    path(f"studies/{S}/series/{R}", _get(wado.retrieve_series)),
    path(f"studies/{S}/series/{R}/metadata", _get(wado.retrieve_series_metadata)),
    path(f"studies/{S}/series/{R}/rendered", _get(wado.retrieve_series_rendered)),
    path(f"studies/{S}/series/{R}/thumbnail", _get(wado.retrieve_series_thumbnail)),
    path(f"studies/{S}/series/{R}/instances", _get(qido.search_for_instances)),
    path(f"studies/{S}/series/{R}/instances/{I}", _get(wado.retrieve_instance)),
    path(f"studies/{S}/series/{R}/instances/{I}/metadata", _get(wado.retrieve_instance_metadata)),
    path(f"studies/{S}/series/{R}/instances/{I}/rendered", _get(wado.retrieve_instance_rendered)),
    path(f"studies/{S}/series/{R}/instances/{I}/thumbnail", _get(wado.retrieve_instance_thumbnail)),
    path(f"studies/{S}/series/{R}/instances/{I}/frames/{F}", _get(wado.retrieve_instance_frames)),
    path(f"studies/{S}/series/{R}/instances/{I}/frames/{F}/rendered", _get(wado.retrieve_frames_rendered)),
    path(f"studies/{S}/series/{R}/instances/{I}/bulkdata/<str:tag>", _get(wado.retrieve_bulkdata)),
    path("series", _get(qido.search_for_series)),
    path("instances", _get(qido.search_for_instances)),
]
