"""An identity provider's client secret is sealed at rest and opened only in memory for allauth
(R-7.3.4.1c); secrets stored in clear before are sealed by a data migration."""

from __future__ import annotations

import importlib

import pytest
from allauth.socialaccount.models import SocialApp
from django.apps import apps
from django.db import connection

from vetpacs.apps.sso import services
from vetpacs.apps.sso.adapter import SocialAccountAdapter
from vetpacs.core.errors import VetpacsError

pytestmark = pytest.mark.django_db

SECRET = "oidc-Client-Secret-0123456789abcdef"


def _stored(app_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM socialaccount_socialapp WHERE id = %s", [app_id])
        return cursor.fetchone()[0]


def _configure(clinic, secret: str = SECRET):
    return services.configure_oidc(
        organisation=clinic,
        provider_id="anxin-idp",
        name="Anxin IdP",
        server_url="https://idp.example.cn",
        client_id="vetpacs",
        secret=secret,
    )


@pytest.mark.requirement("R-7.3.4.1c")
def test_the_client_secret_is_sealed_in_the_database_and_opened_for_allauth(clinic, rf):
    link = _configure(clinic)
    stored = _stored(link.social_app_id)
    assert SECRET not in stored and stored.startswith(services.SEALED_PREFIX)
    [app] = SocialAccountAdapter().list_apps(rf.get("/"), provider="anxin-idp")
    assert app.secret == SECRET
    # Written in clear some other way (the Django admin saves the model): sealed all the same.
    row = SocialApp.objects.get(pk=link.social_app_id)
    row.secret = "rotated-Secret-42"
    row.save()
    assert "rotated" not in _stored(row.pk)
    assert (
        SocialAccountAdapter().list_apps(rf.get("/"), provider="anxin-idp")[0].secret == "rotated-Secret-42"
    )


def test_a_secret_too_long_to_seal_in_allauths_column_is_refused_by_name(clinic):
    with pytest.raises(VetpacsError, match="too long"):
        _configure(clinic, "x" * 160)


@pytest.mark.requirement("R-7.3.4.1c")
def test_the_data_migration_seals_secrets_stored_in_clear(clinic, rf):
    link = _configure(clinic)
    SocialApp.objects.filter(pk=link.social_app_id).update(secret=SECRET)  # as before sealing
    migration = importlib.import_module("vetpacs.apps.sso.migrations.0002_seal_client_secrets")
    migration.seal(apps, None)
    assert SECRET not in _stored(link.social_app_id)
    assert SocialAccountAdapter().list_apps(rf.get("/"), provider="anxin-idp")[0].secret == SECRET
    migration.seal(apps, None)  # a second run leaves sealed values alone
    assert SocialAccountAdapter().list_apps(rf.get("/"), provider="anxin-idp")[0].secret == SECRET
