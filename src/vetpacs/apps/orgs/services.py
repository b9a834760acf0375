"""Organisation use cases: create, tokens, and which organisations a caller may see."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from vetpacs.apps.audit import services as audit
from vetpacs.apps.orgs.models import ApiToken, Membership, Organisation
from vetpacs.core.ids import new_token

TOKEN_PREFIX = "vp_"  # noqa: S105 - a public prefix, not a secret
# How long a process trusts a token it has checked, without asking the database again. A token
# revoked or expired elsewhere, or a chain gaining or losing a member clinic, takes effect in every
# platform process within this bound (revoke_token takes effect at once in its own process).
PRINCIPAL_CACHE_SECONDS = 5.0
# Past this many distinct live tokens in one process the cache starts over (memory stays bounded).
PRINCIPAL_CACHE_MAX_ENTRIES = 4096


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, or a token acting for an organisation."""

    organisation_ids: frozenset[int]
    user_id: int | None = None
    token_id: int | None = None
    label: str = ""

    @property
    def primary_organisation_id(self) -> int | None:
        return min(self.organisation_ids) if self.organisation_ids else None


def create_organisation(
    *, name: str, kind: str = Organisation.Kind.CLINIC, parent: Organisation | None = None
) -> Organisation:
    with transaction.atomic():
        org = Organisation.objects.create(name=name, kind=kind, parent=parent)
        audit.record(
            "organisation.created",
            organisation_id=org.id,
            target=f"org:{org.id}",
            detail={"name": name, "kind": kind},
        )
    return org


def issue_token(*, organisation: Organisation, name: str, user_id: int | None = None) -> str:
    """Create a token and return its plaintext; only a hash is stored, so it is shown once."""
    raw = TOKEN_PREFIX + new_token(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            organisation=organisation,
            user_id=user_id,
            name=name,
            prefix=raw[:12],
            key_hash=_hash(raw),
        )
        audit.record(
            "token.issued",
            organisation_id=organisation.id,
            target=f"token:{token.id}",
            user_id=user_id,
            detail={"name": name},
        )
    return raw


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# key_hash -> (monotonic time until which the principal may be reused, principal)
_principals: dict[str, tuple[float, Principal]] = {}
_monotonic = time.monotonic  # the cache's clock; tests move it


def authenticate_token(raw: str) -> Principal | None:
    """The principal a bearer token stands for, or None if it is unknown, revoked or expired.

    A DICOMweb client sends its token on every request (a viewer opening one study sends dozens),
    so a checked token is reused for PRINCIPAL_CACHE_SECONDS without touching the database.
    """
    if not raw.startswith(TOKEN_PREFIX):
        return None
    key_hash = _hash(raw)
    now = _monotonic()
    cached = _principals.get(key_hash)
    if cached is not None and cached[0] > now:
        return cached[1]
    principal, ttl = _principal_from_database(key_hash)
    if principal is None:
        _principals.pop(key_hash, None)
        return None
    if len(_principals) >= PRINCIPAL_CACHE_MAX_ENTRIES:
        _principals.clear()
    _principals[key_hash] = (now + ttl, principal)
    return principal


def _principal_from_database(key_hash: str) -> tuple[Principal | None, float]:
    """The token's principal and how long it may be reused (never past the token's expiry)."""
    token = ApiToken.objects.filter(key_hash=key_hash, revoked_at__isnull=True).first()
    now = timezone.now()
    if token is None or (token.expires_at and token.expires_at <= now):
        return None, 0.0
    # Touch at most once a minute: a busy DICOMweb client must not write on every request.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    ttl = PRINCIPAL_CACHE_SECONDS
    if token.expires_at:
        ttl = min(ttl, (token.expires_at - now).total_seconds())
    principal = Principal(
        organisation_ids=frozenset(visible_organisation_ids([token.organisation_id])),
        user_id=token.user_id,
        token_id=token.id,
        label=f"token:{token.prefix}",
    )
    return principal, ttl


def revoke_token(*, token: ApiToken, user_id: int | None = None) -> None:
    """Revoke a token: refused at once by this process, by every other within PRINCIPAL_CACHE_SECONDS."""
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if updated:
            audit.record(
                "token.revoked",
                organisation_id=token.organisation_id,
                target=f"token:{token.pk}",
                user_id=user_id,
                detail={"name": token.name},
            )
    _principals.pop(token.key_hash, None)


def principal_for_user(user) -> Principal | None:  # noqa: ANN001 - Django user
    if not user or not user.is_authenticated:
        return None
    # A disabled membership (accounts: disable_account) shows nothing of that organisation.
    own = list(Membership.objects.filter(user=user, is_active=True).values_list("organisation_id", flat=True))
    return Principal(
        organisation_ids=frozenset(visible_organisation_ids(own)),
        user_id=user.id,
        label=f"user:{user.get_username()}",
    )


def visible_organisation_ids(own: list[int]) -> set[int]:
    """Own organisations, plus member clinics of a chain one belongs to."""
    ids = set(own)
    if ids:
        ids |= set(Organisation.objects.filter(parent_id__in=ids).values_list("id", flat=True))
    return ids


def get_by_name(name: str) -> Organisation:
    return Organisation.objects.get(name=name)


def create_user(
    *,
    username: str,
    password: str,
    organisation: Organisation,
    role: str = "org_admin",
    superuser: bool = False,
):  # noqa: ANN201 - Django user
    from django.contrib.auth import get_user_model

    User = get_user_model()  # noqa: N806
    with transaction.atomic():
        user = User.objects.create_user(username=username, password=password)
        if superuser:
            user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])
        Membership.objects.create(user=user, organisation=organisation, role=role)
        audit.record(
            "user.created",
            organisation_id=organisation.id,
            target=f"user:{user.id}",
            detail={"username": username, "role": role},
        )
    return user
