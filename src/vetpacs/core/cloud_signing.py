"""Request signing of the Chinese cloud vendors (SMS, real-name checks), as their documentation specifies.

- Aliyun (dysmsapi, RPC style): signature version 1.0, HMAC-SHA1 over
  "METHOD&%2F&" + percent-encoded canonical query, key = AccessKeySecret + "&" (Aliyun SMS "HTTP
  协议及签名" / RPC "签名机制").
- Tencent Cloud (API 3.0): TC3-HMAC-SHA256 (canonical request, string to sign, key derived from
  "TC3" + SecretKey through date, service and "tc3_request") ("Signature v3").
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote


def aliyun_percent_encode(value: str) -> str:
    # RFC 3986 unreserved characters stay; space is %20, "*" is %2A, "~" stays (Aliyun's POP rule).
    return quote(value, safe="-_.~")


def aliyun_canonical_query(params: dict[str, str]) -> str:
    return "&".join(
        f"{aliyun_percent_encode(k)}={aliyun_percent_encode(v)}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )


def aliyun_string_to_sign(params: dict[str, str], method: str = "GET") -> str:
    return f"{method}&{aliyun_percent_encode('/')}&{aliyun_percent_encode(aliyun_canonical_query(params))}"


def aliyun_signature(params: dict[str, str], secret: str, method: str = "GET") -> str:
    text = aliyun_string_to_sign(params, method)
    digest = hmac.new((secret + "&").encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


TC3 = "TC3-HMAC-SHA256"


@dataclass(frozen=True)
class Tc3Signed:
    canonical_request: str
    string_to_sign: str
    signature: str
    authorization: str


def _hmac256(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def tencent_tc3(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    host: str,
    payload: str,
    timestamp: int,
    content_type: str = "application/json; charset=utf-8",
    method: str = "POST",
    canonical_query: str = "",
) -> Tc3Signed:
    """The Authorization header of a TencentCloud API 3.0 request (signed headers content-type;host)."""
    date = dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d")  # UTC, not local time
    signed_headers = "content-type;host"
    canonical_headers = f"content-type:{content_type.lower()}\nhost:{host.lower()}\n"
    canonical_request = "\n".join(
        [
            method,
            "/",
            canonical_query,
            canonical_headers,
            signed_headers,
            hashlib.sha256(payload.encode()).hexdigest(),
        ]
    )
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join(
        [TC3, str(timestamp), scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    secret_date = _hmac256(("TC3" + secret_key).encode(), date)
    secret_signing = _hmac256(_hmac256(secret_date, service), "tc3_request")
    signature = hmac.new(secret_signing, string_to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = (
        f"{TC3} Credential={secret_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
    return Tc3Signed(canonical_request, string_to_sign, signature, authorization)


def tencent_api_headers(
    *,
    secret_id: str,
    secret_key: str,
    service: str,
    host: str,
    payload: str,
    action: str,
    version: str,
    timestamp: int,
) -> dict[str, str]:
    """The headers of a signed TencentCloud API 3.0 JSON POST (X-TC-Region is the caller's to add)."""
    signed = tencent_tc3(
        secret_id=secret_id,
        secret_key=secret_key,
        service=service,
        host=host,
        payload=payload,
        timestamp=timestamp,
    )
    return {
        "Authorization": signed.authorization,
        "Content-Type": "application/json; charset=utf-8",
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Version": version,
        "X-TC-Timestamp": str(timestamp),
    }
