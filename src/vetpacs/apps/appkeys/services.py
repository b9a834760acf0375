"""App key use cases: issue, rotate, revoke, and authenticate a signed request."""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import tempfile
import time
import weakref
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from vetpacs.apps.appkeys import workflow
from vetpacs.apps.appkeys.models import AppKey, SeenNonce
from vetpacs.apps.audit import services as audit
from vetpacs.apps.orgs.models import Organisation
from vetpacs.apps.orgs.services import Principal, visible_organisation_ids
from vetpacs.core import crypto
from vetpacs.core.errors import Errors, VetpacsError

KEY_ID_PREFIX = "ak_"
SECRET_PREFIX = "sk_"  # noqa: S105 - a public prefix, not a secret
# Nonces older than this are forgotten: a request that old is refused by its timestamp anyway.
NONCE_KEEP_SECONDS = 2 * workflow.MAX_SKEW_SECONDS + 60
# One request in this many sweeps forgotten nonces (cheap, and no separate task to schedule).
NONCE_SWEEP_ONE_IN = 200
_time = time.time  # the clock signed timestamps are checked against; tests move it


def _sealing_key() -> bytes:
    return crypto.derive_key(bytes(settings.VETPACS_MASTER_KEY), "appkey-secrets")


def _aad(key_id: str) -> bytes:
    return f"appkey:{key_id}".encode()


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def issue_key(
    *,
    organisation: Organisation,
    name: str,
    scopes: list[str],
    user_id: int | None = None,
    ip: str | None = None,
) -> tuple[AppKey, str]:
    """Create a key; returns it and its secret, which is shown this once and never again."""
    unknown = sorted(set(scopes) - set(workflow.SCOPES))
    if unknown or not scopes:
        raise VetpacsError(
            Errors.BAD_REQUEST,
            f"unknown scopes {unknown}; choose from {sorted(workflow.SCOPES)}"
            if unknown
            else "a key needs at least one scope",
        )
    if not name.strip():
        raise VetpacsError(Errors.BAD_REQUEST, "a key needs a name")
    key_id = KEY_ID_PREFIX + secrets.token_hex(10)
    secret = _new_secret()
    with transaction.atomic():
        key = AppKey.objects.create(
            organisation=organisation,
            name=name.strip(),
            key_id=key_id,
            sealed_secret=crypto.seal(_sealing_key(), secret.encode(), _aad(key_id)),
            scopes=sorted(set(scopes)),
            created_by_id=user_id,
        )
        audit.record(
            "appkey.issued",
            organisation_id=organisation.id,
            user_id=user_id,
            ip=ip,
            target=f"appkey:{key.key_id}",
            detail={"name": key.name, "scopes": key.scopes},
        )
    return key, secret


def rotate_key(*, key: AppKey, user_id: int | None = None, ip: str | None = None) -> str:
    """Replace the secret (the key id stays); the old secret stops working at once."""
    if key.revoked_at is not None:
        raise VetpacsError(Errors.INVALID_APP_KEY, f"{key.key_id} is revoked and cannot be rotated")
    secret = _new_secret()
    with transaction.atomic():
        key.sealed_secret = crypto.seal(_sealing_key(), secret.encode(), _aad(key.key_id))
        key.rotated_at = timezone.now()
        key.save(update_fields=["sealed_secret", "rotated_at"])
        audit.record(
            "appkey.rotated",
            organisation_id=key.organisation_id,
            user_id=user_id,
            ip=ip,
            target=f"appkey:{key.key_id}",
        )
    return secret


def revoke_key(*, key: AppKey, user_id: int | None = None, ip: str | None = None) -> None:
    with transaction.atomic():
        if AppKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
            audit.record(
                "appkey.revoked",
                organisation_id=key.organisation_id,
                user_id=user_id,
                ip=ip,
                target=f"appkey:{key.key_id}",
            )
    key.refresh_from_db()


def keys_of(organisation_ids: frozenset[int] | set[int]) -> list[AppKey]:
    return list(AppKey.objects.filter(organisation_id__in=organisation_ids).order_by("-created_at"))


def is_signed(request: HttpRequest) -> bool:
    return request.headers.get("Authorization", "").startswith(workflow.ALGORITHM + " ")


def authenticate_signed(request: HttpRequest) -> Principal:
    """The principal of a correctly signed, fresh, first-seen request; VetpacsError (401/403) otherwise.

    A refused request naming one of our keys is audited (appkey.request_refused) for the key's
    organisation: a replay, an expired or forged signature is a security signal (R-7.3.2.2a).
    """
    try:
        return _authenticate_signed(request)
    except VetpacsError as exc:
        _record_refusal(request, exc)
        raise


def _record_refusal(request: HttpRequest, exc: VetpacsError) -> None:
    parsed = workflow.parse_authorization(request.headers.get("Authorization", ""))
    key = AppKey.objects.filter(key_id=parsed[0]).only("organisation_id").first() if parsed else None
    if key is None:  # junk naming no key of ours: nothing to attribute, and no log flooding
        return
    audit.record(
        "appkey.request_refused",
        organisation_id=key.organisation_id,
        actor=f"appkey:{parsed[0]}" if parsed else "",
        ip=request.META.get("REMOTE_ADDR"),
        target=f"appkey:{parsed[0]}" if parsed else "",
        result="denied",
        detail={"code": exc.code, "method": request.method, "path": request.path[:200]},
    )


def _authenticate_signed(request: HttpRequest) -> Principal:
    parsed = workflow.parse_authorization(request.headers.get("Authorization", ""))
    if parsed is None:
        raise VetpacsError(
            Errors.SIGNATURE_INVALID,
            f"use 'Authorization: {workflow.ALGORITHM} KeyId=<key id>, Signature=<64 hex digits>'",
        )
    key_id, given = parsed
    timestamp = request.headers.get(workflow.TIMESTAMP_HEADER, "")
    nonce = request.headers.get(workflow.NONCE_HEADER, "")
    body_sha256 = request.headers.get(workflow.BODY_HASH_HEADER, "").lower()
    if not timestamp.isdigit():
        raise VetpacsError(Errors.SIGNATURE_INVALID, f"{workflow.TIMESTAMP_HEADER} must be Unix seconds")
    if not workflow.NONCE_PATTERN.match(nonce):
        raise VetpacsError(
            Errors.SIGNATURE_INVALID, f"{workflow.NONCE_HEADER} must be 16-64 characters of A-Z a-z 0-9 _ -"
        )
    if len(body_sha256) != 64:
        raise VetpacsError(
            Errors.SIGNATURE_INVALID, f"{workflow.BODY_HASH_HEADER} must be the body's hex SHA-256"
        )
    skew = abs(_time() - int(timestamp))
    if skew > workflow.MAX_SKEW_SECONDS:
        raise VetpacsError(
            Errors.SIGNATURE_EXPIRED, f"the timestamp is {int(skew)} s from the server's clock (limit 300 s)"
        )
    key = AppKey.objects.filter(key_id=key_id).first()
    if key is None or key.revoked_at is not None:
        raise VetpacsError(Errors.INVALID_APP_KEY, f"application key {key_id} is unknown or revoked")
    secret = crypto.open_sealed(_sealing_key(), bytes(key.sealed_secret), _aad(key.key_id)).decode()
    text = workflow.string_to_sign(
        method=request.method or "GET",
        path=request.path,  # percent-decoded, as the client signs it (docs/api-signing.md)
        query_string=request.META.get("QUERY_STRING", ""),
        timestamp=timestamp,
        nonce=nonce,
        body_sha256=body_sha256,
    )
    if not hmac.compare_digest(workflow.signature(secret, text), given):
        raise VetpacsError(Errors.SIGNATURE_INVALID, "the signature does not match (see docs/api-signing.md)")
    scope = workflow.required_scope(request.method or "GET", request.path)
    if scope is None or scope not in key.scopes:
        raise VetpacsError(
            Errors.APP_KEY_SCOPE, f"key {key.key_id} lacks the scope {scope or 'for this path'}"
        )
    _check_body(request, body_sha256)  # after the cheap checks: a large body is read only when needed
    _remember_nonce(key, nonce)
    return Principal(
        organisation_ids=frozenset(visible_organisation_ids([key.organisation_id])),
        label=f"appkey:{key.key_id}",
    )


def _check_body(request: HttpRequest, declared: str) -> None:
    """The body must hash to the signed X-Vetpacs-Content-SHA256, checked before any handler reads it.

    Small bodies are read into memory (Django keeps them for the view); a large one (STOW-RS, upload
    chunks) is copied to a temporary file while hashing and the view reads that file instead.
    """
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        actual = hashlib.sha256(request.body).hexdigest()
    else:
        digest = hashlib.sha256()
        spool = tempfile.SpooledTemporaryFile(max_size=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115
        while chunk := request.read(1024 * 1024):
            digest.update(chunk)
            spool.write(chunk)
        spool.seek(0)
        weakref.finalize(request, spool.close)  # closed (and removed) with the request
        request._stream = spool  # type: ignore[attr-defined]  # the view reads the checked bytes
        request._read_started = False  # type: ignore[attr-defined]
        actual = digest.hexdigest()
    if not hmac.compare_digest(actual, declared):
        raise VetpacsError(
            Errors.SIGNATURE_INVALID, f"the body does not match {workflow.BODY_HASH_HEADER} (tampered or cut)"
        )


def _remember_nonce(key: AppKey, nonce: str) -> None:
    now = timezone.now()
    try:
        with transaction.atomic():
            SeenNonce.objects.create(key=key, nonce=nonce, seen_at=now)
    except IntegrityError:
        raise VetpacsError(
            Errors.NONCE_REUSED, f"nonce {nonce} was already used with key {key.key_id}"
        ) from None
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        AppKey.objects.filter(pk=key.pk).update(last_used_at=now)
    if random.randrange(NONCE_SWEEP_ONE_IN) == 0:  # noqa: S311 - load spreading, not security
        sweep_nonces()


def sweep_nonces() -> int:
    cutoff = timezone.now() - timedelta(seconds=NONCE_KEEP_SECONDS)
    deleted, _ = SeenNonce.objects.filter(seen_at__lt=cutoff).delete()
    return deleted
