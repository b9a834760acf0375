"""Which organisation an OpenID Connect identity provider (an allauth SocialApp) signs users into."""

from __future__ import annotations

from django.db import models


class OrganisationIdentityProvider(models.Model):
    organisation = models.ForeignKey(
        "orgs.Organisation", on_delete=models.CASCADE, related_name="identity_providers"
    )
    # allauth's SocialApp (provider "openid_connect"): client id, secret, server_url; its provider_id
    # names the login URL /accounts/oidc/<provider_id>/login/.
    social_app = models.OneToOneField("socialaccount.SocialApp", on_delete=models.CASCADE, related_name="+")
    # The role a user signing in for the first time receives in the organisation.
    default_role = models.CharField(max_length=32, default="referring_vet")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.social_app.provider_id} -> {self.organisation_id}"
