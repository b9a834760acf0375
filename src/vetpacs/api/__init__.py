"""The JSON API at /api/v1 (Django Ninja; OpenAPI docs at /api/v1/docs)."""
