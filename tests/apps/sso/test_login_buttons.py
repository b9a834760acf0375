"""The login page's single sign-on buttons: one per configured organisation provider, posting to allauth."""

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory

from vetpacs.apps.sso.services import configure_oidc

pytestmark = pytest.mark.django_db


def render() -> str:
    return render_to_string("sso/_login_buttons.html", request=RequestFactory().get("/login/"))


def test_no_provider_no_buttons():
    assert "sso" not in render()


def test_each_provider_gets_a_button_that_posts_to_its_login(clinic):
    configure_oidc(
        organisation=clinic,
        provider_id="anxin-sso",
        name="安心集团统一认证",
        server_url="https://idp.example.cn",
        client_id="vetpacs",
        secret="s",
    )
    html = render()
    assert "安心集团统一认证" in html
    assert 'action="/accounts/oidc/anxin-sso/login/' in html
    assert 'method="post"' in html and "csrfmiddlewaretoken" in html


def test_the_login_page_offers_the_organisations_sign_on(client, clinic):
    configure_oidc(
        organisation=clinic,
        provider_id="anxin-sso",
        name="安心集团统一认证",
        server_url="https://idp.example.cn",
        client_id="vetpacs",
        secret="s",
    )
    page = client.get("/login/").content.decode()
    assert "安心集团统一认证" in page
    assert 'action="/accounts/oidc/anxin-sso/login/' in page
