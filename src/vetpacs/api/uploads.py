"""The tus 1.0 resumable-upload endpoint at /api/v1/uploads/ (creation, checksum, termination, concatenation).

Plain Django views: tus lives in headers and raw PATCH bodies, which a schema framework would only
get in the way of. Every answer carries Tus-Resumable; errors are RFC 9457 problem+json. When an
upload completes, `Vetpacs-Ingest` says what the archive made of it (docs/uploads.md).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from vetpacs.apps.orgs.auth import principal_from_request, problem_response, require_csrf
from vetpacs.apps.orgs.services import Principal
from vetpacs.apps.uploads import services
from vetpacs.apps.uploads.models import Upload
from vetpacs.core.errors import Errors, VetpacsError

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,checksum,termination,concatenation"
OFFSET_STREAM = "application/offset+octet-stream"
INGEST_HEADER = "Vetpacs-Ingest"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _principal(request: HttpRequest) -> Principal:
    principal = principal_from_request(request)
    if request.method not in SAFE_METHODS and not request.headers.get("Authorization"):
        require_csrf(request, "upload")  # a browser session (tus-js-client)
    return principal


def _caller(request: HttpRequest) -> services.Caller:
    principal: Principal = request.principal  # type: ignore[attr-defined]
    organisation_id = principal.primary_organisation_id
    if organisation_id is None:
        raise VetpacsError(Errors.FORBIDDEN, "the caller belongs to no organisation that could own the data")
    return services.Caller(
        organisation_id=organisation_id,
        actor=principal.label,
        user_id=principal.user_id,
        ip=request.META.get("REMOTE_ADDR"),
    )


def _problem(exc: VetpacsError) -> HttpResponse:
    resp = problem_response(exc)
    if exc.error is Errors.TUS_VERSION_UNSUPPORTED:
        resp["Tus-Version"] = TUS_VERSION
    return resp


def tus_view(methods: tuple[str, ...]) -> Callable[..., Any]:
    """Check the tus version and the caller, restrict methods, translate VetpacsError once."""

    def decorate(fn: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt  # bearer-token clients; a session's unsafe request is checked in _principal
        @functools.wraps(fn)
        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in methods:
                    resp = _problem(
                        VetpacsError(Errors.METHOD_NOT_ALLOWED, f"{request.method} is not allowed here")
                    )
                    resp["Allow"] = ", ".join(methods)
                elif request.method == "OPTIONS":
                    # tus 1.0: OPTIONS is discovery; it needs neither Tus-Resumable nor a caller.
                    resp = _options()
                else:
                    # The caller first: a stranger learns nothing, not even that the version was wrong.
                    request.principal = _principal(request)  # type: ignore[attr-defined]
                    # tus 1.0: every other request carries Tus-Resumable (a plain JSON GET need not).
                    version = request.headers.get("Tus-Resumable")
                    if request.method != "GET" and version != TUS_VERSION:
                        raise VetpacsError(
                            Errors.TUS_VERSION_UNSUPPORTED,
                            f"Tus-Resumable {version or '(missing)'} is not supported; use {TUS_VERSION}",
                        )
                    resp = fn(request, *args, **kwargs)
            except VetpacsError as exc:
                resp = _problem(exc)
            resp["Tus-Resumable"] = TUS_VERSION
            return resp

        return view

    return decorate


def _options() -> HttpResponse:
    resp = HttpResponse(status=204)
    resp["Tus-Version"] = TUS_VERSION
    resp["Tus-Extension"] = TUS_EXTENSIONS
    resp["Tus-Max-Size"] = str(int(settings.VETPACS_MAX_UPLOAD_BYTES))
    # tus 1.0 checksum: sha1 is mandatory for servers; the gateway uses sha256.
    resp["Tus-Checksum-Algorithm"] = ",".join(services.CHECKSUM_ALGORITHMS)
    return resp


def _int_header(request: HttpRequest, name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise VetpacsError(Errors.BAD_REQUEST, f"{name} must be a non-negative integer, not {raw!r}")
    return int(raw)


def _content_length(request: HttpRequest) -> int:
    raw = request.META.get("CONTENT_LENGTH") or "0"
    return int(raw) if raw.isdigit() else 0


def _partial_ids(value: str) -> list[str]:
    """`final;/api/v1/uploads/a /api/v1/uploads/b` -> the partial uploads' ids (absolute URLs too)."""
    ids = []
    for url in value.split():
        last = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        try:
            ids.append(str(uuid.UUID(last)))
        except ValueError as exc:
            raise VetpacsError(Errors.BAD_REQUEST, f"Upload-Concat names {url!r}, not an upload URL") from exc
    return ids


def _upload_url(request: HttpRequest, upload: Upload) -> str:
    base = request.path if request.path.endswith("/") else request.path.rsplit("/", 1)[0] + "/"
    return f"{base}{upload.id}"


def ingest_header(upload: Upload) -> str:
    """The gateway's confirmation: `stored; sop-instance-uid=...; sha256=...` or `refused; reason=...`."""
    if upload.state == Upload.State.REFUSED:
        detail = upload.reason.replace("\\", "/").replace('"', "'")
        detail = (
            detail.encode("ascii", "backslashreplace").decode("ascii").replace("\r", " ").replace("\n", " ")
        )
        return f'refused; reason={upload.reason_code}; detail="{detail}"'
    return f"{upload.state}; sop-instance-uid={upload.sop_instance_uid}; sha256={upload.sha256}"


def _state_headers(resp: HttpResponse, upload: Upload) -> HttpResponse:
    if upload.concat != Upload.Concat.FINAL or upload.offset == upload.length:
        # tus 1.0 concatenation: a final upload shows an offset only once it is joined.
        resp["Upload-Offset"] = str(upload.offset)
    if upload.done:
        resp[INGEST_HEADER] = ingest_header(upload)
    return resp


@tus_view(("OPTIONS", "POST"))
def create_upload(request: HttpRequest) -> HttpResponse:
    """tus creation (and creation-with-upload, concatenation)."""
    caller = _caller(request)
    if request.headers.get("Upload-Defer-Length"):
        raise VetpacsError(Errors.BAD_REQUEST, "Upload-Defer-Length is not supported; send Upload-Length")
    concat_header = request.headers.get("Upload-Concat", "").strip()
    concat, parts = "", []
    if concat_header == "partial":
        concat = Upload.Concat.PARTIAL
    elif concat_header.startswith("final;"):
        concat, parts = Upload.Concat.FINAL, _partial_ids(concat_header.removeprefix("final;"))
    elif concat_header:
        raise VetpacsError(Errors.BAD_REQUEST, "Upload-Concat must be 'partial' or 'final;<url> <url>...'")
    length = _int_header(request, "Upload-Length")
    metadata = services.parse_metadata(request.headers.get("Upload-Metadata", ""))
    upload = services.create_upload(
        caller=caller, length=length, metadata=metadata, concat=concat, parts=parts
    )
    location = _upload_url(request, upload)
    media_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type == OFFSET_STREAM and _content_length(request) and concat != Upload.Concat.FINAL:
        # creation-with-upload: a body sent as an offset stream is the first chunk.
        try:
            upload = _append(request, upload, caller, offset=0)
        except VetpacsError as exc:
            resp = _problem(exc)
            resp["Location"] = location  # created all the same: the client resumes at its offset
            return resp
    resp = HttpResponse(status=201)
    resp["Location"] = location
    return _state_headers(resp, upload)


def _append(request: HttpRequest, upload: Upload, caller: services.Caller, *, offset: int) -> Upload:
    media_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type != OFFSET_STREAM:
        raise VetpacsError(Errors.UNSUPPORTED_MEDIA_TYPE, f"a chunk is sent as {OFFSET_STREAM}")
    checksum_header = request.headers.get("Upload-Checksum")
    return services.append(
        upload,
        caller=caller,
        offset=offset,
        body=request,  # type: ignore[arg-type]  # HttpRequest.read() streams the body
        content_length=_content_length(request) if request.META.get("CONTENT_LENGTH") else None,
        checksum=services.parse_checksum(checksum_header) if checksum_header else None,
    )


@tus_view(("OPTIONS", "HEAD", "GET", "PATCH", "DELETE"))
def upload_resource(request: HttpRequest, upload_id: uuid.UUID) -> HttpResponse:
    principal: Principal = request.principal  # type: ignore[attr-defined]
    upload = services.get_upload(upload_id, organisation_ids=principal.organisation_ids)
    if request.method == "HEAD":
        return _head(request, upload)
    if request.method == "GET":
        return _status(upload)
    caller = _caller(request)
    if request.method == "DELETE":
        services.terminate(upload, caller=caller)
        return HttpResponse(status=204)
    offset = _int_header(request, "Upload-Offset")
    if offset is None:
        raise VetpacsError(Errors.BAD_REQUEST, "a PATCH needs Upload-Offset")
    upload = _append(request, upload, caller, offset=offset)
    return _state_headers(HttpResponse(status=204), upload)


def _head(request: HttpRequest, upload: Upload) -> HttpResponse:
    resp = HttpResponse(status=200)
    # tus 1.0 HEAD: "The Server MUST prevent the client and/or proxies from caching the response".
    resp["Cache-Control"] = "no-store"
    resp["Upload-Length"] = str(upload.length)
    if upload.metadata:
        resp["Upload-Metadata"] = services.encode_metadata(upload.metadata)
    if upload.concat == Upload.Concat.PARTIAL:
        resp["Upload-Concat"] = "partial"
    elif upload.concat == Upload.Concat.FINAL:
        base = _upload_url(request, upload).rsplit("/", 1)[0]
        resp["Upload-Concat"] = "final;" + " ".join(f"{base}/{p}" for p in upload.parts)
    return _state_headers(resp, upload)


def _status(upload: Upload) -> HttpResponse:
    """GET: the upload and, once finished, what the archive made of it (the gateway's confirmation)."""
    body = {
        "id": str(upload.id),
        "state": upload.state,
        "offset": upload.offset,
        "length": upload.length,
        "filename": upload.metadata.get("filename", ""),
        "concat": upload.concat,
        "sop_instance_uid": upload.sop_instance_uid,
        "study_instance_uid": upload.study_instance_uid,
        "sha256": upload.sha256,
        "reason_code": upload.reason_code,
        "reason": upload.reason,
        "ingest": ingest_header(upload) if upload.done else "",
        "created_at": upload.created_at.isoformat(),
        "completed_at": upload.completed_at.isoformat() if upload.completed_at else None,
    }
    resp = HttpResponse(json.dumps(body, ensure_ascii=False), content_type="application/json; charset=utf-8")
    resp["Cache-Control"] = "no-store"
    return resp


urlpatterns = [
    path("", create_upload, name="uploads"),
    path("<uuid:upload_id>", upload_resource, name="upload"),
]
