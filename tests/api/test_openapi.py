"""The JSON API documents itself (OpenAPI at /api/v1/docs) and answers errors as problem+json."""

import pytest


@pytest.mark.requirement("R-6.2.9.4b")
def test_openapi_schema_lists_the_studies_endpoint(client, db):
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/studies" in schema["paths"]
    assert client.get("/api/v1/docs").status_code == 200


def test_unauthenticated_api_call_gets_401(client, db):
    assert client.get("/api/v1/studies").status_code == 401
