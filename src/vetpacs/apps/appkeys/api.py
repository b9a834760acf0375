"""JSON endpoints for organisation admins: issue, list, rotate and revoke application keys."""

from __future__ import annotations

import datetime as dt

from django.http import HttpRequest
from ninja import Router, Schema, Status

from vetpacs.apps.appkeys import services
from vetpacs.apps.appkeys.models import AppKey
from vetpacs.apps.orgs.auth import has_permission
from vetpacs.apps.orgs.models import Organisation
from vetpacs.apps.orgs.services import Principal
from vetpacs.core.errors import Errors, VetpacsError

router = Router(tags=["app keys"])
PERMISSION = "appkey.manage"


class AppKeyCreate(Schema):
    name: str
    scopes: list[str]
    organisation_id: int | None = None


class AppKeyRead(Schema):
    key_id: str
    name: str
    organisation_id: int
    scopes: list[str]
    created_at: dt.datetime
    rotated_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


class AppKeySecret(AppKeyRead):
    secret: str  # shown in this answer only


def _admin(request: HttpRequest, organisation_id: int | None) -> tuple[Principal, int]:
    principal: Principal = request.principal  # type: ignore[attr-defined]
    org_id = organisation_id or principal.primary_organisation_id
    if org_id is None or org_id not in principal.organisation_ids:
        raise VetpacsError(Errors.NOT_FOUND, "no such organisation")
    if not has_permission(principal.user_id, org_id, PERMISSION):
        raise VetpacsError(Errors.FORBIDDEN, f"managing application keys needs the {PERMISSION} permission")
    return principal, org_id


def _key(request: HttpRequest, key_id: str) -> AppKey:
    principal: Principal = request.principal  # type: ignore[attr-defined]
    key = AppKey.objects.filter(key_id=key_id, organisation_id__in=principal.organisation_ids).first()
    if key is None:
        raise VetpacsError(Errors.NOT_FOUND, f"no application key {key_id}")
    _admin(request, key.organisation_id)
    return key


@router.get("", response=list[AppKeyRead])
def list_keys(request: HttpRequest, organisation_id: int | None = None) -> list[AppKey]:
    _, org_id = _admin(request, organisation_id)
    return services.keys_of({org_id})


@router.post("", response={201: AppKeySecret})
def issue_key(request: HttpRequest, body: AppKeyCreate) -> Status:
    principal, org_id = _admin(request, body.organisation_id)
    key, secret = services.issue_key(
        organisation=Organisation.objects.get(pk=org_id),
        name=body.name,
        scopes=body.scopes,
        user_id=principal.user_id,
        ip=request.META.get("REMOTE_ADDR"),
    )
    return Status(201, {**AppKeyRead.from_orm(key).model_dump(), "secret": secret})


@router.post("/{key_id}/rotate", response=AppKeySecret)
def rotate_key(request: HttpRequest, key_id: str) -> dict:
    key = _key(request, key_id)
    principal: Principal = request.principal  # type: ignore[attr-defined]
    secret = services.rotate_key(key=key, user_id=principal.user_id, ip=request.META.get("REMOTE_ADDR"))
    key.refresh_from_db()
    return {**AppKeyRead.from_orm(key).model_dump(), "secret": secret}


@router.post("/{key_id}/revoke", response=AppKeyRead)
def revoke_key(request: HttpRequest, key_id: str) -> AppKey:
    key = _key(request, key_id)
    principal: Principal = request.principal  # type: ignore[attr-defined]
    services.revoke_key(key=key, user_id=principal.user_id, ip=request.META.get("REMOTE_ADDR"))
    return key
