"""Mark a picture for the audit event that lets it leave, and say later whose picture it was (R-7.3.4.3b).

The trace token names an audit event (`study.downloaded`, `study.rendered`) and is signed with a key
derived from the master key, so nobody without the platform's keys can make or alter one; the audit
event says who, when, from where and what. docs/sensitive-data.md has the data levels and their marks.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from vetpacs.apps.audit import services as audit
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.identity import services as identity
from vetpacs.apps.orgs.models import Organisation
from vetpacs.apps.watermark import marks

TOKEN_VERSION = "1"  # noqa: S105 - the token format's version, not a secret
TRACE_PURPOSE = "watermark.trace"
# The metadata token carries 128 bits of the HMAC; the pixels (64 bits in all) carry the low 32 bits
# of the event id and 32 bits of the HMAC: a forged pixel trace passes one time in four billion.
TOKEN_MAC_HEX = 32
PIXEL_MAC_BITS = 32
PIXEL_ID_BITS = 32


def _mac(event_id: int) -> str:
    return identity.platform_blind_index(TRACE_PURPOSE, f"{TOKEN_VERSION}.{event_id}")


def trace_token(event_id: int) -> str:
    return f"{TOKEN_VERSION}.{event_id}.{_mac(event_id)[:TOKEN_MAC_HEX]}"


def pixel_payload(event_id: int) -> int:
    mac = int(_mac(event_id)[: PIXEL_MAC_BITS // 4], 16)
    return ((event_id & ((1 << PIXEL_ID_BITS) - 1)) << PIXEL_MAC_BITS) | mac


def who(event: AuditEvent) -> tuple[str, str]:
    """The clinic's name and the account name of an event."""
    clinic = ""
    if event.organisation_id is not None:
        clinic = (
            Organisation.objects.filter(id=event.organisation_id).values_list("name", flat=True).first() or ""
        )
    account = event.actor
    if event.user_id is not None:
        account = (
            get_user_model().objects.filter(id=event.user_id).values_list("username", flat=True).first()
            or account
        )
    return clinic, account


def visible_text(event: AuditEvent) -> str:
    """Clinic, account name and time: what the tiled mark says."""
    when = timezone.localtime(event.at).strftime("%Y-%m-%d %H:%M")
    return "  ".join(p for p in (*who(event), when) if p)


def mark(body: bytes, media_type: str, *, event: AuditEvent, visible: bool) -> bytes:
    """A rendered JPEG or PNG, marked for `event`: the visible mark if asked, the trace always."""
    img = marks.plain(marks.decode(body))
    if visible:
        img = marks.draw_visible(img, visible_text(event))
    img = marks.embed_pixels(img, pixel_payload(event.id))
    return marks.encode(img, media_type, trace_token(event.id))


def mark_download(body: bytes, media_type: str, *, event: AuditEvent) -> bytes:
    """A picture a user downloads (the study page's series export)."""
    return mark(body, media_type, event=event, visible=settings.VETPACS_WATERMARK_DOWNLOADS)


def mark_rendered(request: Any, instance: Any, body: bytes, media_type: str) -> bytes:
    """A WADO-RS rendered frame or thumbnail: marked when a browser user asked for it (a signed-in
    session); a system calling with a token or an app key gets the picture as rendered."""
    principal = getattr(request, "principal", None)
    if principal is None or principal.user_id is None or request.headers.get("Authorization"):
        return body
    study = instance.study
    event = audit.record(
        "study.rendered",
        organisation_id=study.organisation_id,
        user_id=principal.user_id,
        actor=principal.label,
        ip=request.META.get("REMOTE_ADDR"),
        target=f"study:{study.study_instance_uid}",
        detail={
            "instance": instance.sop_instance_uid,
            "thumbnail": request.path.endswith("/thumbnail"),
            "format": media_type,
        },
    )
    return mark(body, media_type, event=event, visible=settings.VETPACS_WATERMARK_RENDERED)


@dataclass(frozen=True)
class Verdict:
    """What a file's marks say: `traced` (event found), `forged`, `unknown_event` or `missing`."""

    status: str
    source: str = ""  # "metadata" or "pixels"
    event: AuditEvent | None = None
    detail: str = ""


def _from_token(token: str) -> tuple[int | None, bool]:
    version, _, rest = token.partition(".")
    raw_id, _, mac = rest.partition(".")
    if version != TOKEN_VERSION or not raw_id.isdigit():
        return None, False
    event_id = int(raw_id)
    return event_id, hmac.compare_digest(mac, _mac(event_id)[:TOKEN_MAC_HEX])


def _from_pixels(payload: int) -> tuple[int | None, bool]:
    # The pixels hold the id's low 32 bits (four billion download events before they wrap).
    event_id = payload >> PIXEL_MAC_BITS
    mac = payload & ((1 << PIXEL_MAC_BITS) - 1)
    return event_id, hmac.compare_digest(f"{mac:08x}", _mac(event_id)[: PIXEL_MAC_BITS // 4])


def _verdict(event_id: int, source: str, detail: str = "") -> Verdict:
    event = AuditEvent.objects.filter(id=event_id).first()
    if event is None:
        return Verdict("unknown_event", source, None, f"event {event_id} is not in the audit log (purged?)")
    return Verdict("traced", source, event, detail)


def verify(body: bytes) -> Verdict:
    """Read a picture's marks: the metadata token first, then the pixel trace (a re-save may drop the
    metadata). A mark present but not signed by this platform is `forged`."""
    try:
        img = marks.decode(body)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is "not a picture", said plainly
        return Verdict("missing", detail=f"not a readable picture: {exc}")
    forged = ""
    token = marks.read_text(img)
    if token is not None:
        event_id, good = _from_token(token)
        if good and event_id is not None:
            return _verdict(event_id, "metadata")
        forged = "metadata"
    payload = marks.read_pixels(marks.plain(img))
    if payload is not None:
        event_id, good = _from_pixels(payload)
        if good and event_id is not None:
            return _verdict(event_id, "pixels", "the metadata token is forged" if forged else "")
        forged = forged or "pixels"
    if forged:
        return Verdict("forged", forged, None, "the mark is not signed by this platform")
    return Verdict("missing")
