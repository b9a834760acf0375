"""Pictures leaving the platform carry the download event's signed trace; `vetpacs watermark verify`
names who took them and when, or says the mark is missing or forged (R-7.3.4.3b)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from PIL import Image

from tests.apps.watermark.test_marks import resave
from tests.builders.dicom import image
from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.watermark import marks, services

pytestmark = pytest.mark.django_db


def _smooth(rows: int = 256, columns: int = 256) -> np.ndarray:
    y, x = np.mgrid[0:rows, 0:columns]
    return (1000 + 2000 * np.exp(-(((x - columns / 2) / 80.0) ** 2 + ((y - rows / 2) / 80.0) ** 2))).astype(
        np.uint16
    )


@pytest.fixture
def series(ingest):
    ds = image(pixels=_smooth(), animal="旺财", owner="张伟", WindowCenter=2000, WindowWidth=2400)
    ingest(ds)
    return ds


def _download(client, ds, fmt: str) -> bytes:
    url = f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/images.zip?format={fmt}"
    response = client.get(url)
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        return zf.read(zf.namelist()[0])


def _verify(tmp_path, body: bytes, name: str = "leaked.png") -> str:
    path = tmp_path / name
    path.write_bytes(body)
    out = io.StringIO()
    call_command("watermark", "verify", str(path), stdout=out)
    return out.getvalue()


@pytest.mark.requirement("R-7.3.4.3b")
@pytest.mark.parametrize(("fmt", "resave_as"), [("png", "PNG"), ("jpeg", "JPEG")])
def test_a_downloaded_picture_names_its_download_even_after_a_resave(
    clinic_user_client, series, tmp_path, fmt, resave_as
):
    body = _download(clinic_user_client, series, fmt)
    event = AuditEvent.objects.get(action="study.downloaded")
    verdict = services.verify(body)
    assert (verdict.status, verdict.source, verdict.event.id) == ("traced", "metadata", event.id)
    # Saved again by an image program, without our metadata: the pixels still say who.
    again = resave(body, resave_as, **({"quality": 90, "comment": b""} if resave_as == "JPEG" else {}))
    assert marks.read_text(marks.decode(again)) is None
    verdict = services.verify(again)
    assert (verdict.status, verdict.source, verdict.event.id) == ("traced", "pixels", event.id)
    out = _verify(tmp_path, again)
    assert f"event:  {event.id} study.downloaded study:{series.StudyInstanceUID}" in out
    assert "admin-li" in out and "安心宠物医院" in out and "from the pixels" in out
    assert AuditEvent.objects.filter(action="watermark.verified", target=f"audit:{event.id}").exists()


@pytest.mark.requirement("R-7.3.4.3b")
def test_a_download_carries_the_visible_mark_unless_switched_off(clinic_user_client, series):
    marked = np.asarray(marks.decode(_download(clinic_user_client, series, "png")), dtype=int)
    with override_settings(VETPACS_WATERMARK_DOWNLOADS=False):
        unmarked = np.asarray(marks.decode(_download(clinic_user_client, series, "png")), dtype=int)
    # Both carry the pixel trace (a few grey levels); only the first carries the lightened text.
    lighter = (marked - unmarked) > marks.STEP
    assert 0.02 < lighter.mean() < 0.5


@pytest.mark.requirement("R-7.3.4.3b")
def test_a_forged_or_altered_mark_is_called_forged_and_an_unmarked_picture_missing(
    clinic_user_client, series, tmp_path
):
    plain = np.asarray(marks.decode(_download(clinic_user_client, series, "png")))
    event = AuditEvent.objects.get(action="study.downloaded")
    # Someone writes another event's id into the token: the signature does not match.
    forged_token = services.trace_token(event.id).replace(f".{event.id}.", f".{event.id + 1}.")
    clean = marks.encode(marks.plain(Image.fromarray(plain)), marks.PNG, forged_token)
    # Pixels of an unmarked picture, with only the forged token.
    unmarked = Image.fromarray(np.full((256, 256), 90, dtype=np.uint8))
    forged = marks.encode(unmarked, marks.PNG, forged_token)
    assert services.verify(forged).status == "forged"
    with pytest.raises(CommandError, match="FORGED"):
        _verify(tmp_path, forged)
    # A trace made with another platform's key (any other HMAC) is forged too.
    other = marks.encode(marks.embed_pixels(unmarked, (event.id << 32) | 0x12345678), marks.PNG, "1.1.00")
    assert services.verify(other).status == "forged"
    # A forged token over genuine pixels: the pixels still name the real download.
    assert services.verify(clean).status == "traced" and "forged" in services.verify(clean).detail
    buffer = io.BytesIO()
    unmarked.save(buffer, format="PNG")
    with pytest.raises(CommandError, match="No trace mark"):
        _verify(tmp_path, buffer.getvalue())


@pytest.mark.requirement("R-7.3.4.3b")
def test_rendered_frames_for_a_browser_user_are_traced_and_a_token_caller_gets_them_plain(
    clinic_user_client, client, token, series
):
    url = (
        f"/dicomweb/studies/{series.StudyInstanceUID}/series/{series.SeriesInstanceUID}"
        f"/instances/{series.SOPInstanceUID}/rendered"
    )
    seen = clinic_user_client.get(url, HTTP_ACCEPT="image/png")
    assert seen.status_code == 200
    event = AuditEvent.objects.get(action="study.rendered")
    assert event.detail["instance"] == series.SOPInstanceUID and event.user_id is not None
    assert services.verify(seen.content).event.id == event.id
    thumb = clinic_user_client.get(url.replace("/rendered", "/thumbnail"))
    assert services.verify(thumb.content).event.detail["thumbnail"] is True
    system = client.get(url, HTTP_ACCEPT="image/png", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert system.status_code == 200 and services.verify(system.content).status == "missing"
    assert AuditEvent.objects.filter(action="study.rendered").count() == 2
