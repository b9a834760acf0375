"""Every DICOMweb route, walked from the URL table: anonymous gets 401, another clinic gets 404."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern

from tests.builders import dicom as build
from vetpacs.dicomweb import urls as dicomweb_urls

_PARAM = re.compile(r"<str:(\w+)>")


def _routes() -> list[str]:
    return [str(p.pattern) for p in dicomweb_urls.urlpatterns if isinstance(p, URLPattern)]


def _fill(route: str, ds) -> str:
    values = {
        "study": ds.StudyInstanceUID, "series": ds.SeriesInstanceUID,
        "instance": ds.SOPInstanceUID, "frames": "1", "tag": "7FE00010",
    }
    return "/dicomweb/" + _PARAM.sub(lambda m: str(values[m.group(1)]), route)


# Search routes without a UID in the path answer 200 with no match instead of 404.
_SEARCH_ROOTS = {"studies", "series", "instances"}


@pytest.mark.requirement("R-6.2.1c")
@pytest.mark.parametrize("route", _routes())
def test_another_clinic_cannot_see_a_study_on_any_dicomweb_route(
    route, ingest, clinic_client, other_clinic_client
):
    ds = build.image()
    ingest(ds)
    url = _fill(route, ds)
    anonymous = Client().get(url)
    assert anonymous.status_code == 401, f"{url} answered {anonymous.status_code} without credentials"
    own = clinic_client.get(url)
    assert own.status_code not in (401, 403, 404, 501), f"{url}: owner got {own.status_code}"
    other = other_clinic_client.get(url)
    if route in _SEARCH_ROOTS:
        assert other.status_code in (200, 204)
        assert str(ds.StudyInstanceUID) not in other.content.decode("utf-8", "replace")
    else:
        assert other.status_code == 404, f"{url}: another clinic got {other.status_code}"


def test_a_forged_token_is_refused_with_a_reason(client, db):
    resp = client.get("/dicomweb/studies", HTTP_AUTHORIZATION="Bearer vp_forged-token")
    assert resp.status_code == 401
    assert "invalid" in resp.json()["detail"].lower()


def test_a_wrong_auth_scheme_is_refused_with_a_reason(client, db):
    resp = client.get("/dicomweb/studies", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    assert resp.status_code == 401
    assert "Bearer" in resp.json()["detail"]


def test_api_studies_are_scoped_to_the_callers_clinic(ingest, clinic_client, other_clinic_client):
    ingest(build.image())
    assert clinic_client.get("/api/v1/studies").json()["count"] == 1
    assert other_clinic_client.get("/api/v1/studies").json()["count"] == 0
    assert clinic_client.get("/api/v1/studies", HTTP_AUTHORIZATION="").status_code == 401
