"""Administrators without the web UI issue keys and configure single sign-on from the command line."""

import io

import pytest
from django.core.management import CommandError, call_command

from vetpacs.apps.appkeys.models import AppKey
from vetpacs.apps.sso.models import OrganisationIdentityProvider

pytestmark = pytest.mark.django_db


def test_create_app_key_prints_the_secret_once(clinic):
    out = io.StringIO()
    call_command(
        "create_app_key", "--org", clinic.name, "--name", "HIS", "--scopes", "dicomweb.read", stdout=out
    )
    key = AppKey.objects.get()
    assert f"key id: {key.key_id}" in out.getvalue()
    assert "secret: sk_" in out.getvalue()


def test_create_app_key_names_an_unknown_scope(clinic):
    with pytest.raises(CommandError, match="dicomweb.erase"):
        call_command("create_app_key", "--org", clinic.name, "--name", "x", "--scopes", "dicomweb.erase")


def test_configure_sso_links_the_provider_to_the_organisation(clinic):
    call_command(
        "configure_sso",
        "--org",
        clinic.name,
        "--provider-id",
        "anxin",
        "--server-url",
        "https://idp.example.cn/",
        "--client-id",
        "vetpacs",
        "--secret",
        "s3cret",
        stdout=io.StringIO(),
    )
    link = OrganisationIdentityProvider.objects.get()
    assert link.organisation_id == clinic.id
    assert link.social_app.settings["server_url"] == "https://idp.example.cn"


def test_configure_sso_refuses_plain_http_off_loopback(clinic):
    with pytest.raises(CommandError, match="https"):
        call_command(
            "configure_sso",
            "--org",
            clinic.name,
            "--provider-id",
            "anxin",
            "--server-url",
            "http://idp.example.cn",
            "--client-id",
            "x",
            "--secret",
            "y",
        )
