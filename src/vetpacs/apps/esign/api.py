"""JSON endpoints for the signed-in user: real-name verification and their signing key's status."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.http import HttpRequest
from ninja import Router, Schema

from vetpacs.apps.esign import services
from vetpacs.apps.orgs.services import Principal
from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.core.masking import mask_id_number, mask_name

router = Router(tags=["real name and e-signature"])


class RealNameIn(Schema):
    name: str
    id_number: str


class RealNameStatus(Schema):
    verified: bool
    name: str = ""  # masked: 张*
    id_number: str = ""  # masked: 110***********002X
    key_fingerprint: str = ""
    verified_at: dt.datetime | None = None


def _user(request: HttpRequest):  # noqa: ANN202 - Django user
    principal: Principal = request.principal  # type: ignore[attr-defined]
    if principal.user_id is None:
        raise VetpacsError(Errors.FORBIDDEN, "real-name verification is for a signed-in person, not a key")
    return get_user_model().objects.get(pk=principal.user_id)


def _status(user) -> dict:  # noqa: ANN001
    key = services.signing_key_of(user)
    if key is None:
        return {"verified": False}
    name, number = services.real_name_of(user) or ("", "")
    return {
        "verified": True,
        "name": mask_name(name),
        "id_number": mask_id_number(number),
        "key_fingerprint": key.fingerprint,
        "verified_at": key.created_at,
    }


@router.get("/me", response=RealNameStatus)
def my_real_name(request: HttpRequest) -> dict:
    return _status(_user(request))


@router.post("/me", response=RealNameStatus)
def verify_my_real_name(request: HttpRequest, body: RealNameIn) -> dict:
    user = _user(request)
    services.verify_real_name(
        user=user, name=body.name, id_number=body.id_number, ip=request.META.get("REMOTE_ADDR")
    )
    return _status(user)
