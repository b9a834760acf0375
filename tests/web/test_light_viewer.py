"""The light viewer's serving at /m/ and its pure measurement rules (VHS, Norberg, angles) under node."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.requirement("R-6.2.2f")
@pytest.mark.skipif(shutil.which("node") is None, reason="node is part of the set-up (npm builds the viewer)")
def test_measurement_rules_pass_their_node_tests():
    done = subprocess.run(
        ["node", "--test", str(ROOT / "viewer-light" / "src" / "measure.test.js")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout


@pytest.fixture
def light_build(settings, tmp_path):
    root = tmp_path / "light"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text('<!doctype html><script type="module" src="/m/assets/index-AbC123.js">')
    (root / "assets" / "index-AbC123.js").write_text("console.log('viewer')")
    settings.VETPACS_LIGHT_VIEWER_DIR = str(root)
    return root


def test_anonymous_visitor_is_sent_to_login(client, light_build, db):
    response = client.get("/m/?study=1.2.3")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/m/")


def test_signed_in_user_gets_the_viewer_with_a_policy_that_lets_the_decoders_run(
    clinic_user_client, light_build
):
    response = clinic_user_client.get("/m/?study=1.2.3")
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert (
        "'wasm-unsafe-eval'" in csp and "worker-src 'self' blob:" in csp and "frame-ancestors 'self'" in csp
    )
    b"".join(response.streaming_content)  # read to the end, the test client closes the file


def test_hashed_assets_are_cached_for_a_year_and_missing_ones_are_404(client, light_build, db):
    response = client.get("/m/assets/index-AbC123.js")
    assert response.status_code == 200 and "immutable" in response["Cache-Control"]
    b"".join(response.streaming_content)  # read to the end, the test client closes the file
    assert client.get("/m/assets/nothing.js").status_code == 404
    assert client.get("/m/../../etc/passwd").status_code == 404


def test_missing_build_says_how_to_make_it(clinic_user_client, settings, tmp_path):
    settings.VETPACS_LIGHT_VIEWER_DIR = str(tmp_path / "none")
    response = clinic_user_client.get("/m/")
    assert response.status_code == 503 and "make light-viewer" in response.content.decode()
