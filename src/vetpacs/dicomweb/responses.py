"""Shared response helpers for DICOMweb: JSON, errors, multipart."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse

DICOM_JSON = "application/dicom+json"


def dicom_json_response(payload: Any, status: int = 200) -> HttpResponse:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return HttpResponse(body.encode("utf-8"), status=status, content_type=f"{DICOM_JSON}; charset=utf-8")


def error_response(status: int, detail: str, *, code: str = "") -> HttpResponse:
    body = {"status": status, "detail": detail}
    if code:
        body["code"] = code
    return HttpResponse(
        json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json; charset=utf-8",
    )
