"""Identity use cases: keep owners and original identity attributes encrypted, give them back."""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.db import transaction
from django.db.models import Min, Subquery

from vetpacs.apps.identity import keys
from vetpacs.apps.identity.models import DataKey, InstanceIdentity, Owner
from vetpacs.core import crypto

_FIELDS = ("name", "phone", "id_card", "address")


def _aad(owner_pseudonym: str, field: str) -> bytes:
    return f"owner:{owner_pseudonym}:{field}".encode()


def new_pseudonym() -> str:
    # Uppercase hex fits the PN and LO value representations.
    return "ANON" + secrets.token_hex(6).upper()


def find_or_create_owner(*, organisation_id: int, fields: dict[str, str], current: str = "") -> Owner | None:
    """The clinic's owner with this name and phone, made on first sight. None if nothing to keep.

    `current` is the pseudonym of the owner the animal already has. A later study that names that
    owner with less (the name without the phone, or the phone without the name) is the same owner, not
    a new one: the animal stays with the owner its earlier studies gave it, phone number included."""
    if not any(fields.get(f) for f in _FIELDS):
        return None
    bkey = keys.blind_index_key(organisation_id)
    name_bidx = crypto.blind_index(bkey, fields.get("name", "")) if fields.get("name") else ""
    phone_bidx = crypto.blind_index(bkey, fields.get("phone", "")) if fields.get("phone") else ""
    if current and not (name_bidx and phone_bidx):
        known = Owner.objects.filter(organisation_id=organisation_id, pseudonym=current).first()
        if known is not None and name_bidx in ("", known.name_bidx) and phone_bidx in ("", known.phone_bidx):
            return known
    existing = Owner.objects.filter(
        organisation_id=organisation_id, name_bidx=name_bidx, phone_bidx=phone_bidx
    ).first()
    if existing:
        return existing
    row, key = keys.current_data_key(organisation_id)
    pseudonym = new_pseudonym()
    enc = {f"{f}_enc": crypto.seal(key, (fields.get(f) or "").encode(), _aad(pseudonym, f)) for f in _FIELDS}
    id_bidx = crypto.blind_index(bkey, fields["id_card"]) if fields.get("id_card") else ""
    return Owner.objects.create(
        organisation_id=organisation_id,
        data_key=row,
        pseudonym=pseudonym,
        name_bidx=name_bidx,
        phone_bidx=phone_bidx,
        id_card_bidx=id_bidx,
        **enc,
    )


def reveal_owner(owner: Owner) -> dict[str, str]:
    key = keys.unwrap(owner.data_key)
    return {
        f: crypto.open_sealed(key, bytes(getattr(owner, f"{f}_enc")), _aad(owner.pseudonym, f)).decode()
        for f in _FIELDS
    }


def owner_pseudonyms_matching(
    *, organisation_ids: set[int] | frozenset[int], field: str, value: str
) -> list[str]:
    """Pseudonyms of owners whose field equals value exactly (through the blind index)."""
    if field not in ("name", "phone", "id_card"):
        raise ValueError(field)
    out: list[str] = []
    for org_id in organisation_ids:
        bidx = crypto.blind_index(keys.blind_index_key(org_id), value)
        out += Owner.objects.filter(organisation_id=org_id, **{f"{field}_bidx": bidx}).values_list(
            "pseudonym", flat=True
        )
    return out


def seal_originals(
    *, organisation_id: int, entries: list[tuple[str, str, Owner | None, dict[str, Any]]]
) -> list[InstanceIdentity]:
    """Rows keeping the original owner attributes, sealed, not saved: (study uid, SOP uid, owner, originals).

    Sealing needs no write, so ingest does it before its transaction takes the database's write lock."""
    if not entries:
        return []
    row, key = keys.current_data_key(organisation_id)
    return [
        InstanceIdentity(
            organisation_id=organisation_id,
            study_instance_uid=study,
            sop_instance_uid=sop,
            owner=owner,
            data_key=row,
            originals_enc=crypto.seal(key, json.dumps(originals, ensure_ascii=False).encode(), sop.encode()),
        )
        for study, sop, owner, originals in entries
    ]


def _open(row: InstanceIdentity) -> dict[str, Any]:
    try:
        key = keys.unwrap(row.data_key)
    except PermissionError:
        return {}
    data = crypto.open_sealed(key, bytes(row.originals_enc), row.sop_instance_uid.encode())
    return json.loads(data)


def originals_for_instances(sop_instance_uids: list[str]) -> dict[str, dict[str, Any]]:
    rows = InstanceIdentity.objects.filter(sop_instance_uid__in=sop_instance_uids).select_related("data_key")
    return {r.sop_instance_uid: _open(r) for r in rows}


def originals_for_studies(study_instance_uids: list[str]) -> dict[str, dict[str, Any]]:
    """One instance's originals per study: the patient/owner attributes are the same study-wide."""
    first_per_study = (
        InstanceIdentity.objects.filter(study_instance_uid__in=study_instance_uids)
        .values("study_instance_uid")
        .annotate(first=Min("id"))
        .values("first")
    )
    rows = InstanceIdentity.objects.filter(id__in=Subquery(first_per_study)).select_related("data_key")
    return {row.study_instance_uid: _open(row) for row in rows}


def destroy_keys(organisation_id: int) -> int:
    """Crypto-shred: with the wrapped keys gone, any copy of the ciphertext is unreadable."""
    from django.utils import timezone

    with transaction.atomic():
        rows = list(
            DataKey.objects.select_for_update()
            .filter(organisation_id=organisation_id, wrapped_key__isnull=False)
            .values_list("id", "wrapped_key")
        )
        DataKey.objects.filter(id__in=[i for i, _ in rows]).update(
            wrapped_key=None, destroyed_at=timezone.now()
        )
        # What caches built from this clinic's identity (re-identified headers, search answers) is
        # unreadable now: the archive's generation tells every process so (archive.generation).
        from vetpacs.apps.archive.services import bump_generation  # noqa: PLC0415 - archive imports identity

        bump_generation()
    for _, wrapped in rows:
        keys.forget(bytes(wrapped))
    return len(rows)


# Values the platform keeps about its own users (staff phone numbers, R-7.3.4.1c): sealed under a key
# derived from the master key for one purpose, and found by exact match through a keyed blind index.
def _platform_key(kind: str, purpose: str) -> bytes:
    return crypto.derive_key(keys.master_key(), f"platform-{kind}:{purpose}")


def seal_platform_value(purpose: str, value: str) -> bytes:
    return crypto.seal(_platform_key("seal", purpose), value.encode(), purpose.encode())


def open_platform_value(purpose: str, sealed: bytes) -> str:
    return crypto.open_sealed(_platform_key("seal", purpose), bytes(sealed), purpose.encode()).decode()


def platform_blind_index(purpose: str, value: str) -> str:
    return crypto.blind_index(_platform_key("index", purpose), value)
