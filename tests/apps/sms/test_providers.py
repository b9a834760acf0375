"""The Aliyun and Tencent adapters make real HTTP requests; a local server checks their signatures."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from vetpacs.apps.sms import services
from vetpacs.core import cloud_signing as signing
from vetpacs.core.errors import VetpacsError

SECRET = "local-test-secret"  # noqa: S105


class FakeVendor(BaseHTTPRequestHandler):
    """Answers like the vendor: OK only when the signature verifies with SECRET."""

    received: list[dict] = []
    refuse_with: str | None = None

    def log_message(self, *args) -> None:  # quiet
        pass

    def _answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # Aliyun: signed query string
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        FakeVendor.received.append({"params": params})
        expected = signing.aliyun_signature(params, SECRET)
        if params.get("Signature") != expected:
            self._answer({"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched"})
        elif FakeVendor.refuse_with:
            self._answer({"Code": FakeVendor.refuse_with, "Message": "refused"})
        else:
            self._answer({"Code": "OK", "Message": "OK", "BizId": "1", "RequestId": "r"})

    def do_POST(self) -> None:  # Tencent: TC3-signed JSON body
        payload = self.rfile.read(int(self.headers["Content-Length"])).decode()
        FakeVendor.received.append({"headers": dict(self.headers), "payload": json.loads(payload)})
        expected = signing.tencent_tc3(
            secret_id="AKIDtest",
            secret_key=SECRET,
            service="sms",
            host=self.headers["Host"],
            payload=payload,
            timestamp=int(self.headers["X-TC-Timestamp"]),
        )
        if self.headers["Authorization"] != expected.authorization:
            self._answer({"Response": {"Error": {"Code": "AuthFailure.SignatureFailure", "Message": "bad"}}})
        else:
            self._answer({"Response": {"SendStatusSet": [{"Code": "Ok", "Message": "send success"}]}})


@pytest.fixture
def vendor():
    FakeVendor.received = []
    FakeVendor.refuse_with = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeVendor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def configure(settings, provider: str, endpoint: str, secret: str = SECRET) -> None:
    settings.VETPACS_SMS = {
        "provider": provider,
        "access_key_id": "AKIDtest" if provider == "tencent" else "LTAItest",
        "access_key_secret": secret,
        "sign_name": "安心宠物",
        "templates": "login:SMS_100,password_reset:SMS_200",
        "sdk_app_id": "1400000000",
        "region": "",
        "endpoint": endpoint,
    }


@pytest.mark.requirement("R-6.2.7d")
def test_aliyun_send_sms_is_accepted_by_a_server_checking_the_signature(settings, vendor):
    configure(settings, "aliyun", vendor)
    services.send_sms(phone="13812345678", purpose="login", code="482913")
    params = FakeVendor.received[0]["params"]
    assert params["PhoneNumbers"] == "13812345678"
    assert params["TemplateCode"] == "SMS_100"
    assert json.loads(params["TemplateParam"]) == {"code": "482913"}


def test_aliyun_with_a_wrong_secret_fails_with_the_vendors_reason(settings, vendor):
    configure(settings, "aliyun", vendor, secret="wrong")  # noqa: S106
    with pytest.raises(VetpacsError, match="SignatureDoesNotMatch") as caught:
        services.send_sms(phone="13812345678", purpose="login", code="1")
    assert caught.value.code == "sms_send_failed"


def test_aliyun_business_limit_is_reported(settings, vendor):
    configure(settings, "aliyun", vendor)
    FakeVendor.refuse_with = "isv.BUSINESS_LIMIT_CONTROL"
    with pytest.raises(VetpacsError, match="BUSINESS_LIMIT_CONTROL"):
        services.send_sms(phone="13812345678", purpose="login", code="1")


@pytest.mark.requirement("R-6.2.7d")
def test_tencent_send_sms_is_accepted_by_a_server_checking_the_signature(settings, vendor):
    configure(settings, "tencent", vendor)
    services.send_sms(phone="+86 138 1234 5678", purpose="password_reset", code="551100")
    request = FakeVendor.received[0]
    assert request["headers"]["X-TC-Action"] == "SendSms"
    assert request["payload"]["PhoneNumberSet"] == ["+8613812345678"]
    assert request["payload"]["TemplateId"] == "SMS_200"
    assert request["payload"]["TemplateParamSet"] == ["551100"]


def test_tencent_with_a_wrong_secret_is_refused(settings, vendor):
    configure(settings, "tencent", vendor, secret="wrong")  # noqa: S106
    with pytest.raises(VetpacsError, match="SignatureFailure"):
        services.send_sms(phone="13812345678", purpose="login", code="1")


def test_an_unreachable_provider_is_a_clear_error(settings):
    configure(settings, "aliyun", "http://127.0.0.1:9/")  # discard port: nothing listens
    with pytest.raises(VetpacsError, match="unreachable"):
        services.send_sms(phone="13812345678", purpose="login", code="1")


def test_a_purpose_without_a_template_is_named(settings, vendor):
    configure(settings, "aliyun", vendor)
    with pytest.raises(VetpacsError, match="phone_verification"):
        services.send_sms(phone="13812345678", purpose="phone_verification", code="1")
