"""`vetpacs demo`: the demo clinic, login, token and studies, and a second run that changes nothing."""

from __future__ import annotations

import io
import re

from django.core.management import call_command


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


def test_demo_images_are_what_the_viewer_needs(db):
    from vetpacs.web.management.commands.demo import demo_datasets

    dx, *ct, us = demo_datasets()
    assert (dx.Modality, dx.Rows, dx.Columns, dx.BitsAllocated) == ("DX", 512, 512, 16)
    assert dx.pixel_array.std() > 300  # an image, not a flat field
    assert len(ct) == 20 and len({s.ImagePositionPatient[2] for s in ct}) == 20
    assert len({s.FrameOfReferenceUID for s in ct}) == 1
    assert (us.PhotometricInterpretation, us.SamplesPerPixel) == ("RGB", 3)
    assert str(dx.PatientName) == "张伟^旺财" and str(ct[0].PatientName) == "王芳^咪咪"
