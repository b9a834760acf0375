"""dicomweb-client and requests against a real `vetpacs serve`, every request signed with an app key."""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlsplit

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from tests.builders import dicom as build
from vetpacs.apps.appkeys import workflow


class SignedRequest(requests.auth.AuthBase):
    """Signs each prepared request the way docs/api-signing.md describes."""

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id, self.secret = key_id, secret

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if not isinstance(body, bytes):
            body = body.encode() if isinstance(body, str) else b"".join(body)
            r.body = body
            r.headers["Content-Length"] = str(len(body))
            r.headers.pop("Transfer-Encoding", None)
        url = urlsplit(r.url)
        r.headers.update(
            workflow.sign_headers(
                key_id=self.key_id,
                secret=self.secret,
                method=r.method or "GET",
                path=url.path,
                query_string=url.query,
                body=body,
                timestamp=int(time.time()),
                nonce=secrets.token_hex(16),
            )
        )
        return r


@pytest.fixture(scope="module")
def app_key(platform_server) -> tuple[str, str]:
    out = platform_server.run_cli(
        "create-app-key",
        "--org",
        platform_server.organisation,
        "--name",
        "interop HIS",
        "--scopes",
        "dicomweb.read,dicomweb.write,api.read",
    ).stdout
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return fields["key id"], fields["secret"]


@pytest.mark.requirement("R-7.3.4.3a")
def test_dicomweb_client_stores_searches_and_retrieves_with_signed_requests(platform_server, app_key):
    session = requests.Session()
    session.auth = SignedRequest(*app_key)
    client = DICOMwebClient(url=platform_server.dicomweb_url, session=session)
    datasets = build.study(2)
    client.store_instances(datasets)
    uid = datasets[0].StudyInstanceUID
    found = client.search_for_studies(search_filters={"StudyInstanceUID": uid})
    assert [s["0020000D"]["Value"][0] for s in found] == [uid]
    instance = client.retrieve_instance(uid, datasets[0].SeriesInstanceUID, datasets[0].SOPInstanceUID)
    assert instance.SOPInstanceUID == datasets[0].SOPInstanceUID


@pytest.mark.requirement("R-7.3.4.3c")
def test_a_replayed_request_is_refused_by_the_live_server(platform_server, app_key):
    key_id, secret = app_key
    headers = workflow.sign_headers(
        key_id=key_id,
        secret=secret,
        method="GET",
        path="/api/v1/studies",
        query_string="limit=5",
        timestamp=int(time.time()),
        nonce=secrets.token_hex(16),
    )
    url = f"{platform_server.url}/api/v1/studies?limit=5"
    assert requests.get(url, headers=headers, timeout=30).status_code == 200
    again = requests.get(url, headers=headers, timeout=30)
    assert again.status_code == 401
    assert again.json()["type"] == "urn:vetpacs:error:nonce_reused"
