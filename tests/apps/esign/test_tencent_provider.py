"""The Tencent Cloud FaceID adapter makes a real TC3-signed request; a local server checks it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model

from vetpacs.apps.esign import services
from vetpacs.apps.esign.models import RealNameVerification, SigningKey
from vetpacs.core import cloud_signing
from vetpacs.core.errors import VetpacsError

pytestmark = pytest.mark.django_db
SECRET_ID, SECRET_KEY = "AKIDfaceid", "faceid-local-secret"  # noqa: S105
ID_NUMBER = "11010519491231002X"


class FakeFaceId(BaseHTTPRequestHandler):
    """Answers like IdCardVerification: "0" for 张伟, "-1" for anyone else, "-4" for 服务异常."""

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        payload = self.rfile.read(int(self.headers["Content-Length"])).decode()
        expected = cloud_signing.tencent_tc3(
            secret_id=SECRET_ID,
            secret_key=SECRET_KEY,
            service="faceid",
            host=self.headers["Host"],
            payload=payload,
            timestamp=int(self.headers["X-TC-Timestamp"]),
        )
        body = json.loads(payload)
        if (
            self.headers["Authorization"] != expected.authorization
            or self.headers["X-TC-Action"] != "IdCardVerification"
        ):
            answer = {"Error": {"Code": "AuthFailure.SignatureFailure", "Message": "bad signature"}}
        elif body["Name"] == "服务异常":
            answer = {"Result": "-4", "Description": "证件库服务异常", "RequestId": "r-4"}
        elif body["Name"] == "张伟" and body["IdCard"] == ID_NUMBER:
            answer = {"Result": "0", "Description": "姓名和身份证号一致", "RequestId": "r-0"}
        else:
            answer = {"Result": "-1", "Description": "姓名和身份证号不一致", "RequestId": "r-1"}
        data = json.dumps({"Response": answer}, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def faceid(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeFaceId)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.VETPACS_REAL_NAME_PROVIDER = "tencent"
    settings.VETPACS_REAL_NAME = {
        "secret_id": SECRET_ID,
        "secret_key": SECRET_KEY,
        "endpoint": f"http://127.0.0.1:{server.server_address[1]}/",
    }
    yield
    server.shutdown()
    server.server_close()


@pytest.fixture
def user():
    return get_user_model().objects.create_user(username="dr_zhang", password="x")


@pytest.mark.requirement("R-6.2.7a")
def test_a_matching_name_and_number_give_a_signing_key(faceid, user):
    key = services.verify_real_name(user=user, name="张伟", id_number=ID_NUMBER)
    assert key.verification.provider == "tencent"
    assert key.verification.provider_reference == "r-0"


def test_a_mismatch_is_refused_with_the_vendors_reason_and_kept(faceid, user):
    with pytest.raises(VetpacsError, match="不一致") as caught:
        services.verify_real_name(user=user, name="李四", id_number=ID_NUMBER)
    assert caught.value.code == "real_name_rejected"
    assert RealNameVerification.objects.get().verified is False
    assert not SigningKey.objects.exists()


def test_no_answer_from_the_source_is_not_a_refusal(faceid, user):
    with pytest.raises(VetpacsError) as caught:
        services.verify_real_name(user=user, name="服务异常", id_number=ID_NUMBER)
    assert caught.value.code == "real_name_unavailable"
    assert not RealNameVerification.objects.exists()


def test_wrong_credentials_are_reported(faceid, user, settings):
    settings.VETPACS_REAL_NAME = {**settings.VETPACS_REAL_NAME, "secret_key": "wrong"}
    with pytest.raises(VetpacsError, match="SignatureFailure"):
        services.verify_real_name(user=user, name="张伟", id_number=ID_NUMBER)
