"""The WSGI entry point: bearer DICOMweb calls skip the browser-session middleware, nothing else does."""

from __future__ import annotations

import io
import sys

import pytest
from django.core import signals
from django.db import close_old_connections

from tests.builders import dicom as build
from vetpacs.platform import wsgi


@pytest.fixture
def call(db):
    """Call the application granian serves, in this test's transaction (as Django's test client does)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)

    def _call(path: str, **headers: str) -> tuple[str, dict[str, str], bytes]:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "testserver",
            "wsgi.input": io.BytesIO(),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "SERVER_PROTOCOL": "HTTP/1.1",
            **{f"HTTP_{k.upper()}": v for k, v in headers.items()},
        }
        got: dict[str, object] = {}

        def start_response(status, response_headers, exc_info=None):  # noqa: ANN001, ANN202
            got["status"], got["headers"] = status, dict(response_headers)

        result = wsgi.application(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            result.close()
        return got["status"], got["headers"], body  # type: ignore[return-value]

    yield _call
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def test_a_bearer_dicomweb_call_gets_security_headers_but_no_session_or_language_handling(
    call, token, ingest
):
    ds = build.image(owner="Zhang")
    ingest(ds)
    status, headers, body = call("/dicomweb/studies", authorization=f"Bearer {token}")
    assert status.startswith("200"), body[:300]
    assert ds.StudyInstanceUID.encode() in body
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "Content-Security-Policy" in headers
    assert "Set-Cookie" not in headers and "Content-Language" not in headers


def test_a_dicomweb_call_without_a_bearer_token_goes_through_every_middleware(call, token):
    status, headers, _ = call("/dicomweb/studies")
    assert status.startswith("401")
    assert headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "Content-Language" in headers, "language negotiation ran: the full stack served it"
    status, headers, _ = call("/dicomweb/studies", authorization="Bearer vp_not-a-token")
    assert status.startswith("401") and "Content-Language" not in headers


def test_other_surfaces_keep_the_full_stack_even_with_a_bearer_token(call, token):
    _, headers, _ = call("/api/v1/docs", authorization=f"Bearer {token}")
    assert "Content-Language" in headers
