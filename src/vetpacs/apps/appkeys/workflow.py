"""Pure rules of signed requests: the canonical string, the signature and the scopes (no I/O).

A client builds the same canonical string (docs/api-signing.md has a Python example):

    VP1-HMAC-SHA256
    <METHOD>
    <path, percent-decoded (UTF-8), e.g. /dicomweb/studies>
    <canonical query: pairs sorted, each name and value RFC 3986 encoded, joined by &>
    <timestamp: Unix seconds>
    <nonce>
    <hex SHA-256 of the body>

and sends
    Authorization: VP1-HMAC-SHA256 KeyId=<key id>, Signature=<hex HMAC-SHA256(secret, string)>
    X-Vetpacs-Timestamp, X-Vetpacs-Nonce, X-Vetpacs-Content-SHA256
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import parse_qsl, quote, unquote

ALGORITHM = "VP1-HMAC-SHA256"
TIMESTAMP_HEADER = "X-Vetpacs-Timestamp"
NONCE_HEADER = "X-Vetpacs-Nonce"
BODY_HASH_HEADER = "X-Vetpacs-Content-SHA256"
# R-7.3.4.3c: a request older (or further in the future) than this is refused.
MAX_SKEW_SECONDS = 300
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_\-]{16,64}$")
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()

# What a key may be allowed to do: <surface>.<read|write>.
SCOPES = {
    "dicomweb.read": "DICOMweb 查询与调阅 / QIDO-RS, WADO-RS",
    "dicomweb.write": "DICOMweb 存储 / STOW-RS",
    "api.read": "JSON API 读取 / JSON API reads",
    "api.write": "JSON API 写入 / JSON API writes",
    "uploads.write": "断点续传上传 / resumable uploads",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_AUTH = re.compile(rf"^{ALGORITHM}\s+KeyId=([A-Za-z0-9_]+),\s*Signature=([0-9a-f]{{64}})$")


def canonical_query(query_string: str) -> str:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs))


def string_to_sign(
    *, method: str, path: str, query_string: str, timestamp: str, nonce: str, body_sha256: str
) -> str:
    return "\n".join(
        [ALGORITHM, method.upper(), path, canonical_query(query_string), timestamp, nonce, body_sha256]
    )


def signature(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def parse_authorization(header: str) -> tuple[str, str] | None:
    """(key id, signature) from the Authorization header, or None when it is not well-formed."""
    match = _AUTH.match(header.strip())
    return (match.group(1), match.group(2)) if match else None


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs, by the surface its path belongs to; None for any other path."""
    action = "read" if method.upper() in SAFE_METHODS else "write"
    if path.startswith("/dicomweb/"):
        return f"dicomweb.{action}"
    if path.startswith("/api/v1/uploads/"):
        return "uploads.write"
    if path.startswith("/api/"):
        return f"api.{action}"
    return None


def sign_headers(
    *,
    key_id: str,
    secret: str,
    method: str,
    path: str,
    query_string: str = "",
    body: bytes = b"",
    timestamp: int,
    nonce: str,
) -> dict[str, str]:
    """The headers a client adds to sign one request (what docs/api-signing.md shows).

    `path` as it appears in the URL; it is signed percent-decoded.
    """
    body_sha256 = hashlib.sha256(body).hexdigest()
    text = string_to_sign(
        method=method,
        path=unquote(path),
        query_string=query_string,
        timestamp=str(timestamp),
        nonce=nonce,
        body_sha256=body_sha256,
    )
    return {
        "Authorization": f"{ALGORITHM} KeyId={key_id}, Signature={signature(secret, text)}",
        TIMESTAMP_HEADER: str(timestamp),
        NONCE_HEADER: nonce,
        BODY_HASH_HEADER: body_sha256,
    }
