"""Callers for the watermark tests: the page clients of tests/web."""

from tests.web.conftest import clinic_user_client  # noqa: F401 - re-exported fixture
