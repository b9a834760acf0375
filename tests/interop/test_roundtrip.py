"""Every public test file pydicom reads goes in through STOW-RS and comes back through WADO-RS unchanged."""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from django.utils.http import parse_header_parameters
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence

from vetpacs.apps.archive.models import Instance

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 20 * 1024 * 1024
PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}  # Float, Double Float and Pixel Data
DATA_SET_TRAILING_PADDING = 0xFFFCFFFC
ANY_SYNTAX = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _corpus() -> list[Any]:
    """pydicom's bundled test files and those of pydicom-data (get_testdata_files finds both)."""
    params = []
    root = Path(pydicom.__file__).parent
    for name in sorted(set(get_testdata_files())):
        path = Path(name)
        label = str(path.relative_to(root)) if path.is_relative_to(root) else f"pydicom-data/{path.name}"
        if path.stat().st_size > MAX_FILE_BYTES:
            log.warning(
                "round trip skips %s: %d bytes is over %d", label, path.stat().st_size, MAX_FILE_BYTES
            )
            params.append(pytest.param(path, id=label, marks=pytest.mark.skip(reason="file over 20 MB")))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                pydicom.dcmread(path, stop_before_pixels=True)
            except (InvalidDicomError, Exception) as exc:  # noqa: BLE001 - only files pydicom reads unforced
                log.info("round trip leaves out %s: pydicom cannot read it without force (%s)", label, exc)
                continue
        params.append(pytest.param(path, id=label))
    return params


def stow(client, data: bytes):
    boundary = "roundtrip-boundary-7f3a"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.post(
        "/dicomweb/studies",
        data=body,
        content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )


def only_part(resp) -> bytes:
    """The single part of a multipart/related WADO-RS response."""
    body = b"".join(resp.streaming_content) if resp.streaming else resp.content
    media_type, params = parse_header_parameters(resp["Content-Type"])
    assert media_type == "multipart/related", resp["Content-Type"]
    delimiter = f"--{params['boundary']}".encode()
    parts = [p for p in body.split(delimiter)[1:] if not p.startswith(b"--")]
    assert len(parts) == 1, f"expected one part, got {len(parts)}"
    _headers, _, content = parts[0].partition(b"\r\n\r\n")
    return content.removesuffix(b"\r\n")


def assert_same_values(original: Dataset, got: Dataset, where: str = "") -> None:
    for elem in original:
        tag = int(elem.tag)
        if elem.tag.group == 0x0002 or tag in PIXEL_TAGS or tag == DATA_SET_TRAILING_PADDING:
            continue
        name = f"{where}{elem.keyword or elem.tag}"
        assert elem.tag in got, f"{name} is missing from the retrieved instance"
        theirs = got[elem.tag]
        if isinstance(elem.value, Sequence):
            assert len(theirs.value) == len(elem.value), f"{name}: sequence length differs"
            for i, (a, b) in enumerate(zip(elem.value, theirs.value, strict=True)):
                assert_same_values(a, b, f"{name}[{i}].")
        else:
            assert theirs.value == elem.value, f"{name}: {theirs.value!r} != {elem.value!r}"


def decoded(ds: Dataset) -> np.ndarray | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ds.pixel_array
        except Exception:  # noqa: BLE001 - no decoder or a deliberately broken file: no pixels to compare
            return None


@pytest.mark.requirement("R-7.5a")
@pytest.mark.requirement("R-6.2.1a")
@pytest.mark.parametrize("path", _corpus())
def test_file_round_trips_through_stow_and_wado(clinic_client, path: Path):
    data = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = pydicom.dcmread(io.BytesIO(data))
    resp = stow(clinic_client, data)

    if resp.status_code != 200:
        # Refused: a clear reason, and nothing of it kept.
        assert resp.status_code == 409, resp.content
        assert resp.json()["00081198"]["Value"][0]["00081197"]["Value"]
        reason = resp["Warning"]
        assert "part 1" in reason and len(reason) > 30, reason
        assert not Instance.objects.exists(), f"refused ({reason}) but an instance was indexed"
        return

    [item] = resp.json()["00081199"]["Value"]
    url = item["00081190"]["Value"][0].removeprefix("http://testserver")
    got_resp = clinic_client.get(url, HTTP_ACCEPT=ANY_SYNTAX)
    assert got_resp.status_code == 200, got_resp.content[:500] if not got_resp.streaming else url
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = pydicom.dcmread(io.BytesIO(only_part(got_resp)))
    assert_same_values(original, got)
    expected = decoded(original)
    if expected is not None:
        assert np.array_equal(decoded(got), expected), "decoded pixels differ"
    if os.environ.get("VETPACS_ROUNDTRIP_VERBOSE"):
        log.warning("%s: stored as %s", path.name, got.file_meta.TransferSyntaxUID)
