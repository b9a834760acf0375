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


# R-7.3.4.1c: an identity provider's client secret is sealed at rest in allauth's own column
# (socialaccount_socialapp.secret) as "sealed:" + base64 of the envelope; the adapter opens it in
# memory when allauth asks for the app (adapter.list_apps). Any clear value written there (this
# service, the Django admin) is sealed before it is saved (apps.py: pre_save).
SECRET_PURPOSE = "sso.client_secret"  # noqa: S105 - a key purpose label, not a secret
SEALED_PREFIX = "sealed:"
SECRET_COLUMN_CHARS = 191  # SocialApp.secret's max_length


def seal_secret(secret: str) -> str:
    import base64

    from vetpacs.apps.identity import services as identity

    sealed = (
        SEALED_PREFIX
        + base64.urlsafe_b64encode(identity.seal_platform_value(SECRET_PURPOSE, secret)).decode()
    )
    if len(sealed) > SECRET_COLUMN_CHARS:
        raise VetpacsError(
            Errors.BAD_REQUEST,
            f"client secret too long to keep sealed ({len(secret)} characters; at most about 100)",
        )
    return sealed


def open_secret(stored: str) -> str:
    """The clear secret of a stored value (a value not sealed yet is returned as it is)."""
    import base64

    from vetpacs.apps.identity import services as identity

    if not stored.startswith(SEALED_PREFIX):
        return stored
    return identity.open_platform_value(
        SECRET_PURPOSE, base64.urlsafe_b64decode(stored[len(SEALED_PREFIX) :])
    )
