"""Real-name verification providers: one interface, a development provider, adapters configured by name."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from vetpacs.core import cloud_signing


@dataclass(frozen=True)
class RealNameAnswer:
    verified: bool
    reference: str  # the provider's id for this check, kept as evidence
    reason: str = ""
    raw: dict[str, Any] = field(default_factory=dict)  # the answer as received (hashed, not stored)

    @property
    def evidence_sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class RealNameProvider(Protocol):
    """Checks a name against a resident ID number with an authority (公安 identity services)."""

    name: str

    def verify(self, *, name: str, id_number: str) -> RealNameAnswer: ...


class DevelopmentProvider:
    """For development and tests: a checksum-valid number matches any name, except names starting
    with "未通过" or "REJECT", which the provider answers as not matching (to exercise refusals)."""

    name = "development"
    REJECT_PREFIXES = ("未通过", "REJECT")

    def verify(self, *, name: str, id_number: str) -> RealNameAnswer:
        digest = hashlib.sha256(f"{name}|{id_number}".encode()).hexdigest()[:16]
        if name.startswith(self.REJECT_PREFIXES):
            return RealNameAnswer(
                False, f"dev-{digest}", "姓名与身份证号不一致 / name does not match", {"res": "2"}
            )
        return RealNameAnswer(True, f"dev-{digest}", "", {"res": "1", "ref": f"dev-{digest}"})


class RealNameUnavailable(Exception):
    """The provider could not give an answer (unreachable, refused the call, its source is down)."""


class TencentProvider:
    """Tencent Cloud FaceID IdCardVerification (身份证二要素核验, API 3.0 version 2018-03-01),
    signed TC3-HMAC-SHA256. Result "0": name and number match; "-1": they do not; other codes
    (invalid number or name, source unavailable, daily limit) give no answer."""

    name = "tencent"
    HOST = "faceid.tencentcloudapi.com"
    VERSION = "2018-03-01"
    TIMEOUT_SECONDS = 10

    def __init__(self, config: dict[str, str]) -> None:
        self.config = config

    def verify(self, *, name: str, id_number: str) -> RealNameAnswer:
        endpoint = self.config.get("endpoint") or f"https://{self.HOST}/"
        host = urlsplit(endpoint).netloc
        payload = json.dumps({"IdCard": id_number, "Name": name}, ensure_ascii=False, separators=(",", ":"))
        timestamp = int(time.time())
        headers = cloud_signing.tencent_api_headers(
            secret_id=self.config["secret_id"],
            secret_key=self.config["secret_key"],
            service="faceid",
            host=host,
            payload=payload,
            action="IdCardVerification",
            version=self.VERSION,
            timestamp=timestamp,
        )
        try:
            resp = requests.post(
                endpoint, data=payload.encode(), headers=headers, timeout=self.TIMEOUT_SECONDS
            )
            body = resp.json().get("Response", {})
        except (requests.RequestException, ValueError, AttributeError) as exc:
            raise RealNameUnavailable(f"Tencent FaceID unreachable or answered badly: {exc}") from exc
        if "Error" in body:
            raise RealNameUnavailable(
                f"Tencent FaceID refused: {body['Error'].get('Code')}: {body['Error'].get('Message')}"
            )
        result, description = str(body.get("Result", "")), str(body.get("Description", ""))
        evidence = {"Result": result, "Description": description, "RequestId": body.get("RequestId", "")}
        if result == "0":
            return RealNameAnswer(True, str(body.get("RequestId", "")), "", evidence)
        if result == "-1":
            return RealNameAnswer(
                False, str(body.get("RequestId", "")), description or "姓名与身份证号不一致", evidence
            )
        raise RealNameUnavailable(f"Tencent FaceID gave no answer: {result} {description}")


PROVIDERS: dict[str, type] = {"development": DevelopmentProvider, "tencent": TencentProvider}


def provider(name: str, config: dict[str, str] | None = None) -> RealNameProvider:
    if name == "development":
        return DevelopmentProvider()
    if name not in PROVIDERS:
        raise ValueError(f"unknown real-name provider {name!r}; configured: {sorted(PROVIDERS)}")
    return PROVIDERS[name](config or {})  # type: ignore[no-any-return]
