"""`vetpacs verify` over a replicated store names the copy that went bad (R-6.2.1a, R-7.3.4.1b)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.builders import dicom as build
from tests.contract.backends import raw_client, s3_config
from vetpacs.apps.archive import blobs
from vetpacs.apps.archive.models import Blob


def _verify() -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify", stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture(params=["local+local", "local+s3"])
def second_copy(request, settings, tmp_path: Path):
    """Point the platform at a replicated store; returns (location name, a way to corrupt its copy)."""
    first = {"backend": "local", "local_root": str(tmp_path / "copy-a"), "name": "local-a"}
    if request.param == "local+local":
        second = {"backend": "local", "local_root": str(tmp_path / "copy-b"), "name": "local-b"}

        def corrupt(key: str) -> None:
            (tmp_path / "copy-b" / key).write_bytes(b"bit rot")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        second = {**s3_config(endpoint), "name": "s3-offsite"}

        def corrupt(key: str) -> None:
            raw_client(endpoint).put_object(Bucket=second["s3_bucket"], Key=key, Body=b"bit rot")

    settings.VETPACS_STORAGE = {"backend": "replicated", "replicas": [first, second]}
    blobs.reset()
    return second["name"], corrupt


@pytest.mark.requirement("R-6.2.1a")
@pytest.mark.requirement("R-7.3.4.1b")
def test_vetpacs_verify_reports_the_corrupted_replica(ingest, second_copy):
    location, corrupt = second_copy
    ingest(build.image(modality="DX"))
    blob = Blob.objects.get()
    assert blob.locations == ["local-a", location]
    assert _verify() == (0, "1 blobs checked, 0 problems\n", "")

    corrupt(blob.key)
    code, out, err = _verify()
    assert code == 1
    assert out == "1 blobs checked, 1 problems\n"
    assert err == f"{blob.key}: copy on {location} missing or corrupt\n"

    # The operator's repair brings the copy back, and verify is clean again.
    assert blobs.store().repair(blob.key, blob.sha256) == [location]  # type: ignore[attr-defined]
    assert _verify()[0] == 0
