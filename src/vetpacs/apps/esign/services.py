"""Real-name verification and signing: verify_real_name, sign, verify, signing_key_of.

The reports app signs a report with `sign(user=..., payload=pdf_or_canonical_bytes,
purpose="report.signed", target=f"report:{id}")` and checks it later with `verify(signature,
payload)`; a user without a verified real name gets REAL_NAME_REQUIRED.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from vetpacs.apps.audit import services as audit
from vetpacs.apps.esign import providers, workflow
from vetpacs.apps.esign.models import RealNameVerification, Signature, SigningKey
from vetpacs.core import crypto
from vetpacs.core.errors import Errors, VetpacsError
from vetpacs.core.masking import mask_id_number, mask_name


def _master() -> bytes:
    return bytes(settings.VETPACS_MASTER_KEY)


def _field_key() -> bytes:
    return crypto.derive_key(_master(), "esign-fields")


def _private_key_key() -> bytes:
    return crypto.derive_key(_master(), "esign-private-keys")


def _index_key() -> bytes:
    return crypto.derive_key(_master(), "esign-id-number-index")


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verify_real_name(*, user, name: str, id_number: str, ip: str | None = None) -> SigningKey:  # noqa: ANN001
    """Check name and ID number with the provider; on success give the user a new signing key pair.

    Every attempt is kept (sealed) as evidence and audited; a refusal raises REAL_NAME_REJECTED
    after its evidence is written.
    """
    name = name.strip()
    number = workflow.normalise_id_number(id_number)
    problem = workflow.id_number_problem(number)
    if problem:
        raise VetpacsError(Errors.ID_NUMBER_INVALID, problem)
    if not name:
        raise VetpacsError(Errors.BAD_REQUEST, "姓名不能为空 / the name is required")
    provider = providers.provider(
        settings.VETPACS_REAL_NAME_PROVIDER, getattr(settings, "VETPACS_REAL_NAME", {})
    )
    try:
        answer = provider.verify(name=name, id_number=number)
    except providers.RealNameUnavailable as exc:
        audit.record(
            "realname.unavailable",
            user_id=user.pk,
            ip=ip,
            target=f"user:{user.pk}",
            result="failed",
            detail={"provider": provider.name, "reason": str(exc)[:200]},
        )
        raise VetpacsError(Errors.REAL_NAME_UNAVAILABLE, str(exc)) from exc
    now = timezone.now()
    with transaction.atomic():
        check = RealNameVerification.objects.create(
            user=user,
            sealed_name=crypto.seal(_field_key(), name.encode(), f"name:{user.pk}".encode()),
            sealed_id_number=crypto.seal(_field_key(), number.encode(), f"id_number:{user.pk}".encode()),
            id_number_index=crypto.blind_index(_index_key(), number),
            provider=provider.name,
            provider_reference=answer.reference,
            verified=answer.verified,
            reason=answer.reason[:200],
            evidence_sha256=answer.evidence_sha256,
            at=now,
            ip=ip,
        )
        audit.record(
            "realname.verified" if answer.verified else "realname.rejected",
            user_id=user.pk,
            ip=ip,
            target=f"user:{user.pk}",
            result="ok" if answer.verified else "failed",
            detail={
                "name": mask_name(name),
                "id_number": mask_id_number(number),
                "provider": provider.name,
                "reference": answer.reference,
                "evidence_sha256": answer.evidence_sha256,
            },
        )
        if answer.verified:
            private = Ed25519PrivateKey.generate()
            public = _raw(private.public_key())
            fingerprint = hashlib.sha256(public).hexdigest()
            private_raw = private.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            key = SigningKey.objects.create(
                user=user,
                verification=check,
                public_key=public,
                sealed_private_key=crypto.seal(
                    _private_key_key(), private_raw, f"ed25519:{fingerprint}".encode()
                ),
                fingerprint=fingerprint,
                created_at=now,
            )
            audit.record(
                "signing_key.created",
                user_id=user.pk,
                ip=ip,
                target=f"signing_key:{fingerprint[:16]}",
                detail={"fingerprint": fingerprint, "verification_id": check.pk},
            )
            return key
    raise VetpacsError(Errors.REAL_NAME_REJECTED, answer.reason or None)


def signing_key_of(user) -> SigningKey | None:  # noqa: ANN001
    """The user's newest signing key (from their newest successful verification), or None."""
    return SigningKey.objects.filter(user=user).order_by("-id").first()


def is_verified(user) -> bool:  # noqa: ANN001
    return signing_key_of(user) is not None


def sign(*, user, payload: bytes, purpose: str, target: str = "", ip: str | None = None) -> Signature:  # noqa: ANN001
    """Sign the payload's SHA-256 with the user's key; keep the signature and audit it."""
    key = signing_key_of(user)
    if key is None:
        raise VetpacsError(
            Errors.REAL_NAME_REQUIRED, f"user {user.pk} must pass real-name verification to sign"
        )
    private_raw = crypto.open_sealed(
        _private_key_key(), bytes(key.sealed_private_key), f"ed25519:{key.fingerprint}".encode()
    )
    digest = workflow.signed_digest(payload)
    value = Ed25519PrivateKey.from_private_bytes(private_raw).sign(digest)
    with transaction.atomic():
        signature = Signature.objects.create(
            key=key,
            user=user,
            purpose=purpose,
            target=target,
            payload_sha256=digest.hex(),
            signature=value,
            signed_at=timezone.now(),
        )
        audit.record(
            "signature.created",
            user_id=user.pk,
            ip=ip,
            target=target or f"signature:{signature.pk}",
            detail={
                "purpose": purpose,
                "signature_id": signature.pk,
                "payload_sha256": digest.hex(),
                "key": key.fingerprint,
            },
        )
    return signature


def verify(signature: Signature, payload: bytes) -> bool:
    """Whether the payload is exactly what was signed, under the key recorded with the signature."""
    digest = workflow.signed_digest(payload)
    if digest.hex() != signature.payload_sha256:
        return False
    public = Ed25519PublicKey.from_public_bytes(bytes(signature.key.public_key))
    try:
        public.verify(bytes(signature.signature), digest)
    except InvalidSignature:
        return False
    return True


def real_name_of(user) -> tuple[str, str] | None:  # noqa: ANN001
    """The verified (name, ID number) in full, for a caller allowed to see it; None if unverified."""
    key = signing_key_of(user)
    if key is None:
        return None
    check = key.verification
    name = crypto.open_sealed(_field_key(), bytes(check.sealed_name), f"name:{user.pk}".encode()).decode()
    number = crypto.open_sealed(_field_key(), bytes(check.sealed_id_number), f"id_number:{user.pk}".encode())
    return name, number.decode()
