"""Transport and headers (R-6.2.6.1, R-7.3.4.2): HTTPS, HSTS, CSP, framing, cookies, CSRF, timeouts."""

import datetime
import ipaddress
import os
import signal
import subprocess
import time

import pytest
import requests
from django.test import Client

from tests.apps.accounts.conftest import login
from tests.interop.conftest import VETPACS, LiveDatabase, free_port
from vetpacs.apps.accounts import middleware

pytestmark = pytest.mark.django_db


@pytest.mark.requirement("R-7.3.4.2a")
def test_pages_carry_csp_framing_and_nosniff_headers(client):
    resp = client.get("/login/")
    csp = resp["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "object-src 'none'" in csp and "frame-ancestors 'self'" in csp
    assert "form-action 'self'" in csp
    assert resp["X-Frame-Options"] == "SAMEORIGIN"
    assert resp["X-Content-Type-Options"] == "nosniff"
    assert resp["Referrer-Policy"] == "same-origin"


def test_the_viewer_gets_what_ohif_needs_and_no_more_elsewhere(client):
    viewer = middleware.content_security_policy("/viewer/viewer")
    assert middleware.content_security_policy("/m/") == viewer  # the light viewer decodes the same way
    page = middleware.content_security_policy("/")
    assert "'wasm-unsafe-eval'" in viewer and "worker-src 'self' blob:" in viewer
    assert "wasm-unsafe-eval" not in page and "blob:" not in page.split("script-src")[1].split(";")[0]


@pytest.mark.requirement("R-7.3.4.2a")
def test_an_embedding_allow_list_replaces_x_frame_options(client, settings):
    settings.VETPACS_FRAME_ANCESTORS = ["https://his.example-hospital.cn"]
    resp = client.get("/login/")
    assert "frame-ancestors 'self' https://his.example-hospital.cn" in resp["Content-Security-Policy"]
    assert "X-Frame-Options" not in resp


@pytest.mark.requirement("R-7.3.4.2a")
def test_a_form_post_without_its_csrf_token_is_refused(make_user, clinic):
    make_user("li", clinic)
    strict = Client(enforce_csrf_checks=True)
    resp = strict.post("/login/", {"username": "li", "password": "Xq7!vetPacs"})
    assert resp.status_code == 403


def test_a_session_ends_after_the_idle_timeout(client, make_user, clinic, settings):
    settings.VETPACS_SESSION_IDLE_MINUTES = 30
    make_user("li", clinic)
    login(client, "li")
    assert client.get("/").status_code == 200
    session = client.session
    session[middleware.SEEN_AT] = time.time() - 31 * 60
    session.save()
    resp = client.get("/")
    assert resp.status_code == 302 and resp["Location"].startswith("/login/?next=/")
    assert "_auth_user_id" not in client.session
    api = Client()
    login(api, "li")
    session = api.session
    session[middleware.SEEN_AT] = time.time() - 31 * 60
    session.save()
    assert api.get("/dicomweb/studies").status_code == 401


def test_a_busy_session_still_ends_at_the_absolute_timeout(client, make_user, clinic, settings):
    settings.VETPACS_SESSION_ABSOLUTE_HOURS = 12
    make_user("li", clinic)
    login(client, "li")
    session = client.session
    session[middleware.LOGIN_AT] = time.time() - 12 * 3600 - 5
    session[middleware.SEEN_AT] = time.time() - 5  # active a moment ago
    session.save()
    assert client.get("/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_an_active_session_within_both_limits_continues(client, make_user, clinic):
    make_user("li", clinic)
    login(client, "li")
    session = client.session
    session[middleware.SEEN_AT] = time.time() - 29 * 60
    session.save()
    assert client.get("/").status_code == 200


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.mark.slow
@pytest.mark.requirement("R-6.2.6.1")
@pytest.mark.requirement("R-7.3.4.2a")
@pytest.mark.requirement("R-7.3.4.4a")
def test_serve_with_a_certificate_speaks_https_with_hsts_and_secure_cookies(tmp_path):
    cert, key = _self_signed(tmp_path)
    database = LiveDatabase(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VETPACS_")}
    env.update(VETPACS_DATA_DIR=str(tmp_path), VETPACS_DATABASE_URL=database.url, VETPACS_LOG_LEVEL="WARNING")
    port = free_port()
    proc = None
    try:
        done = subprocess.run(
            [VETPACS, "migrate", "--noinput"],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        with (tmp_path / "serve.log").open("wb") as log:
            proc = subprocess.Popen(
                [
                    VETPACS,
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--tls-cert",
                    str(cert),
                    "--tls-key",
                    str(key),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"https://127.0.0.1:{port}/login/"
        deadline = time.monotonic() + 60
        resp = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                resp = requests.get(url, verify=str(cert), timeout=30)
                break
            except (requests.ConnectionError, requests.Timeout):  # not listening, or still starting
                time.sleep(0.3)
        assert resp is not None, "no HTTPS answer"
        assert resp.status_code == 200 and "登录" in resp.text
        assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        cookie = resp.headers["Set-Cookie"]
        assert "csrftoken=" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
        # Plain HTTP on the TLS port gets nowhere.
        with pytest.raises(requests.RequestException):
            requests.get(f"http://127.0.0.1:{port}/login/", timeout=5)
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        database.drop()
