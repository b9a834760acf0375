"""The contract suite's fixture: every blob store backend, one at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.backends import BACKENDS, Backend, make_backend, s3_endpoint

__all__ = ["s3_endpoint"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request.param, tmp_path, request)
