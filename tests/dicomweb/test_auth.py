"""DICOMweb authentication as a client sees it: a revoked token is refused within the documented bound."""

from __future__ import annotations

from django.utils import timezone

from vetpacs.apps.orgs import services
from vetpacs.apps.orgs.models import ApiToken
from vetpacs.apps.orgs.services import PRINCIPAL_CACHE_SECONDS


def test_a_token_revoked_elsewhere_is_refused_by_dicomweb_within_the_cache_bound(clinic_client, monkeypatch):
    now = [500.0]
    monkeypatch.setattr(services, "_monotonic", lambda: now[0])
    assert clinic_client.get("/dicomweb/studies").status_code == 200
    ApiToken.objects.update(revoked_at=timezone.now())  # as another platform process would
    now[0] += PRINCIPAL_CACHE_SECONDS + 0.1
    resp = clinic_client.get("/dicomweb/studies")
    assert resp.status_code == 401
    assert resp["WWW-Authenticate"].startswith("Bearer")
    assert "revoked" in resp.json()["detail"]


def test_a_token_revoked_here_is_refused_by_dicomweb_at_once(clinic_client):
    assert clinic_client.get("/dicomweb/studies").status_code == 200
    services.revoke_token(token=ApiToken.objects.get())
    assert clinic_client.get("/dicomweb/studies").status_code == 401
