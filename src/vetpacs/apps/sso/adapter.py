"""allauth's social account adapter: sign-up only through an organisation's configured provider."""

from __future__ import annotations

from typing import Any

from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.http import HttpRequest

from vetpacs.apps.audit import services as audit
from vetpacs.apps.sso import services


def _provider_id(sociallogin: Any) -> str:
    return sociallogin.account.provider


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: Any) -> bool:
        # Accounts are otherwise created by administrators; an organisation's own identity provider
        # may create its members on first sign-in.
        return services.organisation_for(_provider_id(sociallogin)) is not None

    def save_user(self, request: HttpRequest, sociallogin: Any, form: Any = None) -> Any:
        # R-7.3.4.1c: the provider's e-mail is kept sealed with the user's profile (accounts
        # signals), never in allauth's clear EmailAddress table; e-mail never links accounts here.
        sociallogin.email_addresses = []
        user = super().save_user(request, sociallogin, form)
        link = services.organisation_for(_provider_id(sociallogin))
        if link is not None:
            services.provision(
                user=user, link=link, subject=sociallogin.account.uid, ip=request.META.get("REMOTE_ADDR")
            )
        return user

    def list_apps(self, request: HttpRequest, provider: Any = None, client_id: Any = None) -> list[Any]:
        """allauth's apps with their client secrets opened in memory (sealed in the database)."""
        apps = super().list_apps(request, provider=provider, client_id=client_id)
        for app in apps:
            if app.secret:
                app.secret = services.open_secret(app.secret)
        return apps

    def pre_social_login(self, request: HttpRequest, sociallogin: Any) -> None:
        link = services.organisation_for(_provider_id(sociallogin))
        audit.record(
            "sso.logged_in",
            organisation_id=link.organisation_id if link else None,
            user_id=sociallogin.user.pk if sociallogin.is_existing else None,
            ip=request.META.get("REMOTE_ADDR"),
            target=f"sso:{_provider_id(sociallogin)}",
            detail={"subject": sociallogin.account.uid, "existing": sociallogin.is_existing},
        )
