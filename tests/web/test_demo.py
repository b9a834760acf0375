"""`vetpacs demo`: the demo clinic, login, token and studies, and a second run that changes nothing."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.core.management import call_command
from django.utils import timezone

from vetpacs.core import clock


def run_demo() -> str:
    out = io.StringIO()
    call_command("demo", stdout=out)
    return out.getvalue()


def token_in(output: str) -> str:
    match = re.search(r"API token:\s+(vp_\S+)", output)
    assert match, output
    return match.group(1)


def counts() -> dict[str, int]:
    from django.contrib.auth import get_user_model

    from vetpacs.apps.archive.models import Instance, Study
    from vetpacs.apps.orgs.models import Organisation

    return {
        "orgs": Organisation.objects.count(),
        "users": get_user_model().objects.count(),
        "studies": Study.objects.count(),
        "instances": Instance.objects.count(),
    }


def test_demo_user_logs_in_and_sees_the_three_demo_studies(client, db):
    output = run_demo()
    assert "http://127.0.0.1:8000" in output
    assert "demo" in output and "demo-Passw0rd!" in output

    resp = client.post("/login/", {"username": "demo", "password": "demo-Passw0rd!"})
    assert resp.status_code == 302
    page = client.get("/").content.decode()
    assert page.count('class="open-viewer"') == 3
    assert "旺财" in page and "咪咪" in page
    for modality, images in (("DX", 1), ("CT", 20), ("US", 1)):
        assert re.search(rf"<td>{modality}</td>.*?<td class=\"hide-sm\">{images}</td>", page, re.S), modality


def test_the_demo_radiologist_logs_in_with_the_same_password_and_reads_today_s_exam(client, db):
    output = run_demo()
    assert re.search(r"username: radiologist .*影像医生 radiologist", output)
    resp = client.post("/login/", {"username": "radiologist", "password": "demo-Passw0rd!"})
    assert resp.status_code == 302
    reading = client.get("/dashboard/").content.decode()
    assert re.search(r'id="tile-today"[^>]*><div class="n">1<', reading)
    assert "成员与角色" not in reading  # no administration page for this role


def test_demo_token_and_curl_example_work_for_dicomweb(db):
    from vetpacs.apps.orgs.services import authenticate_token

    output = run_demo()
    token = token_in(output)
    principal = authenticate_token(token)
    assert principal is not None
    assert f"curl -H 'Authorization: Bearer {token}'" in output
    assert "/dicomweb/studies" in output


def test_demo_clinic_belongs_to_the_demo_chain(db):
    from vetpacs.apps.orgs.models import Organisation

    run_demo()
    clinic = Organisation.objects.get(name="安心宠物医院 (演示) Demo Clinic")
    assert clinic.kind == "clinic"
    assert clinic.parent is not None and clinic.parent.kind == "chain"


def test_second_demo_run_changes_nothing_but_issues_a_fresh_token(db):
    from vetpacs.apps.orgs.services import authenticate_token

    first = run_demo()
    before = counts()
    second = run_demo()
    assert counts() == before
    assert "already archived" in second
    assert "a fresh token is issued on every run" in second
    assert token_in(first) != token_in(second)
    assert authenticate_token(token_in(second)) is not None
    # The login shown is the same, so instructions written down after the first run still hold.
    login = [line for line in first.splitlines() if "username" in line or "password" in line]
    assert login and all(line in second for line in login)


def demo_dates() -> list[tuple[str, dt.date, dt.time]]:
    from vetpacs.apps.archive.models import Study

    return list(
        Study.objects.order_by("accession_number").values_list("accession_number", "study_date", "study_time")
    )


@pytest.fixture
def pinned_clock(monkeypatch):
    """pinned_clock(local naive datetime): the platform's clock reads that moment from then on."""

    def pin(when: dt.datetime) -> None:
        moment = timezone.make_aware(when) if timezone.is_naive(when) else when
        monkeypatch.setattr(clock, "now", lambda: moment)

    return pin


def test_demo_studies_are_dated_three_days_before_the_day_before_and_the_day_of_the_first_load(
    db, pinned_clock
):
    pinned_clock(dt.datetime(2027, 3, 10, 16, 40))
    output = run_demo()
    assert demo_dates() == [
        ("DEMO-CT-2", dt.date(2027, 3, 9), dt.time(14, 15)),
        ("DEMO-DX-1", dt.date(2027, 3, 7), dt.time(9, 30)),
        ("DEMO-US-3", dt.date(2027, 3, 10), dt.time(11, 0)),
    ]
    assert "DEMO-US-3  2027-03-10 11:00" in output
    assert "日期相对于首次载入之日" in output and "dated relative to the day of the first load" in output


def test_loaded_before_opening_time_today_s_exam_is_not_dated_later_than_now(db, pinned_clock):
    pinned_clock(dt.datetime(2027, 3, 10, 7, 52))
    run_demo()
    assert ("DEMO-US-3", dt.date(2027, 3, 10), dt.time(7, 45)) in demo_dates()


def test_after_demo_the_desk_and_reading_dashboards_and_the_worklist_show_today_s_exam(client, signed_in):
    from django.contrib.auth import get_user_model

    from vetpacs.apps.orgs.models import Organisation
    from vetpacs.web.management.commands.demo import CLINIC

    run_demo()
    clinic = Organisation.objects.get(name=CLINIC)
    desk = signed_in(clinic, "desk-zhou", "front_desk").get("/dashboard/").content.decode()
    assert re.search(r'id="tile-desk-today"[^>]*><div class="n">1<', desk)
    by_modality = re.search(r'id="today-by-modality">(.*?)</table>', desk, re.S).group(1)
    assert re.findall(r"<td>(\w+)</td><td>(\d+)</td>", by_modality) == [("US", "1")]
    assert 'data-chart="chart-desk-chart"' in desk
    tech = signed_in(clinic, "tech-liu", "technician").get("/dashboard/").content.decode()
    assert re.search(r'id="tile-desk-today"[^>]*><div class="n">1<', tech)
    reading = signed_in(clinic, "rad-wang", "radiologist").get("/dashboard/").content.decode()
    assert re.search(r'id="tile-today"[^>]*><div class="n">1<', reading)
    assert "今日暂无检查" not in reading and "今日暂无检查" not in desk

    client.force_login(get_user_model().objects.get(username="demo"))
    today = client.get("/?range=today").content.decode()
    assert today.count('class="open-viewer"') == 1 and "腹部超声 Abdomen ultrasound" in today
    assert client.get("/?range=3d").content.decode().count('class="open-viewer"') == 2
    assert client.get("/?range=7d").content.decode().count('class="open-viewer"') == 3


def test_a_run_on_a_later_day_leaves_the_studies_and_their_first_dates_as_they_are(db, pinned_clock):
    first_day = timezone.localtime(clock.now())
    run_demo()
    before, dates = counts(), demo_dates()
    assert dates[-1][1] == first_day.date()  # DEMO-US-3: today

    pinned_clock(first_day + dt.timedelta(days=1))
    second = run_demo()
    assert counts() == before
    assert demo_dates() == dates
    assert "演示检查已存在，保持原样" in second and "left as they are, dated as on the first load" in second
    assert "already archived" in second and "archived 0" not in second

    pinned_clock(first_day + dt.timedelta(days=40))
    run_demo()
    assert counts() == before and demo_dates() == dates


def test_demo_images_are_what_the_viewer_needs(db):
    from vetpacs.web.management.commands.demo import demo_datasets

    dx, *ct, us = demo_datasets()
    assert (dx.Modality, dx.Rows, dx.Columns, dx.BitsAllocated) == ("DX", 512, 512, 16)
    assert dx.pixel_array.std() > 300  # an image, not a flat field
    assert len(ct) == 20 and len({s.ImagePositionPatient[2] for s in ct}) == 20
    assert len({s.FrameOfReferenceUID for s in ct}) == 1
    assert (us.PhotometricInterpretation, us.SamplesPerPixel) == ("RGB", 3)
    assert str(dx.PatientName) == "张伟^旺财" and str(ct[0].PatientName) == "王芳^咪咪"
