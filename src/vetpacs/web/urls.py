"""The pages' URL table: worklist (home), study page, dashboard, light viewer, OHIF."""

from __future__ import annotations

from django.urls import include, path

from vetpacs.web import dashboard, study, worklist

urlpatterns = [
    path("", worklist.worklist, name="worklist"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("studies/<str:study_instance_uid>/", study.study_page, name="study"),
    path(
        "studies/<str:study_instance_uid>/series/<str:series_instance_uid>/images.zip",
        study.series_images,
        name="series-images",
    ),
    path("m/", include("vetpacs.web.light_viewer")),
    path("viewer/", include("vetpacs.web.viewer")),
]
