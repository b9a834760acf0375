"""Owners of the animals on a page, decrypted once per owner and masked unless the viewer may see them."""

from __future__ import annotations

from vetpacs.apps.identity.models import Owner
from vetpacs.apps.identity.services import reveal_owner
from vetpacs.core.masking import mask_name, mask_phone

SENSITIVE = "patient.view_sensitive"


def owners_by_pseudonym(pseudonyms: set[str]) -> dict[str, dict[str, str]]:
    """pseudonym -> {name, phone, ...} in clear; one query for the page, keys unwrapped from cache."""
    found = [p for p in pseudonyms if p]
    if not found:
        return {}
    rows = Owner.objects.filter(pseudonym__in=found).select_related("data_key")
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        try:
            out[row.pseudonym] = reveal_owner(row)
        except PermissionError:  # the clinic's keys were destroyed: nothing to show
            continue
    return out


def shown(owner: dict[str, str] | None, *, permitted: bool) -> dict[str, str]:
    """What a page prints of an owner: in full, or masked (R-7.3.4.5b)."""
    if not owner:
        return {"name": "", "phone": "", "masked": ""}
    if permitted:
        return {"name": owner.get("name", ""), "phone": owner.get("phone", ""), "masked": ""}
    return {
        "name": mask_name(owner.get("name", "")),
        "phone": mask_phone(owner.get("phone", "")),
        "masked": "1",
    }
