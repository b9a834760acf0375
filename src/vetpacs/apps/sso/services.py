"""Configure an organisation's OpenID Connect provider; provision users who sign in through it."""

from __future__ import annotations

import re

from allauth.socialaccount.models import SocialApp
from django.db import transaction

from vetpacs.apps.audit import services as audit
from vetpacs.apps.orgs.models import Membership, Organisation
from vetpacs.apps.sso.models import OrganisationIdentityProvider
from vetpacs.core.errors import Errors, VetpacsError

PROVIDER = "openid_connect"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def configure_oidc(
    *,
    organisation: Organisation,
    provider_id: str,
    name: str,
    server_url: str,
    client_id: str,
    secret: str,
    default_role: str = "referring_vet",
    user_id: int | None = None,
) -> OrganisationIdentityProvider:
    """Create or update the organisation's provider (discovery at server_url/.well-known/...)."""
    if not _SLUG.match(provider_id):
        raise VetpacsError(Errors.BAD_REQUEST, "provider_id: 2-63 lower-case letters, digits or '-'")
    if not server_url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise VetpacsError(Errors.BAD_REQUEST, "server_url must use https (plain http only on loopback)")
    with transaction.atomic():
        app, created = SocialApp.objects.update_or_create(
            provider=PROVIDER,
            provider_id=provider_id,
            defaults={
                "name": name,
                "client_id": client_id,
                "secret": secret,
                "settings": {"server_url": server_url, "token_auth_method": "client_secret_basic"},
            },
        )
        link = OrganisationIdentityProvider.objects.filter(social_app=app).first()
        if link is not None and link.organisation_id != organisation.id:
            raise VetpacsError(Errors.BAD_REQUEST, f"provider {provider_id} belongs to another organisation")
        link, _ = OrganisationIdentityProvider.objects.update_or_create(
            social_app=app, defaults={"organisation": organisation, "default_role": default_role}
        )
        audit.record(
            "sso.configured" if created else "sso.updated",
            organisation_id=organisation.id,
            user_id=user_id,
            target=f"sso:{provider_id}",
            detail={"server_url": server_url, "client_id": client_id, "default_role": default_role},
        )
    return link


def organisation_for(provider_id: str) -> OrganisationIdentityProvider | None:
    return (
        OrganisationIdentityProvider.objects.select_related("organisation", "social_app")
        .filter(social_app__provider=PROVIDER, social_app__provider_id=provider_id)
        .first()
    )


def provision(*, user, link: OrganisationIdentityProvider, subject: str, ip: str | None) -> None:  # noqa: ANN001
    """Make the user a member of the provider's organisation (first sign-in) and audit it."""
    membership, created = Membership.objects.get_or_create(
        user=user, organisation=link.organisation, defaults={"role": link.default_role}
    )
    if created:
        audit.record(
            "sso.user_provisioned",
            organisation_id=link.organisation_id,
            user_id=user.pk,
            ip=ip,
            target=f"user:{user.pk}",
            detail={"provider": link.social_app.provider_id, "subject": subject, "role": membership.role},
        )
