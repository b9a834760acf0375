"""tuspy uploads to a real `vetpacs serve` in chunks and in parallel parts, then QIDO finds the study."""

from __future__ import annotations

import base64
import hashlib
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from tusclient import client as tus

from tests.builders import dicom as build
from tests.interop.conftest import live_platform

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_platform(tmp_path_factory.mktemp("tus")) as (live, database):
        yield live


def _found_in_qido(server, ds) -> bool:
    resp = requests.get(
        f"{server.dicomweb_url}/studies",
        params={"StudyInstanceUID": ds.StudyInstanceUID},
        headers=server.headers,
        timeout=30,
    )
    resp.raise_for_status()
    return len(resp.json()) == 1


@pytest.mark.requirement("R-6.2.1g")
@pytest.mark.requirement("R-6.1.4")
def test_tuspy_uploads_a_file_in_checked_chunks_and_it_is_archived(server, tmp_path):
    ds = build.image(rows=256, columns=256)
    path = build.write(ds, tmp_path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    client = tus.TusClient(f"{server.url}/api/v1/uploads/", headers=server.headers)
    # tuspy opens a file path anew per chunk and never closes it: give it one stream we close.
    with path.open("rb") as stream:
        uploader = client.uploader(
            file_stream=stream,
            chunk_size=32 * 1024,
            metadata={"filename": path.name, "sha256": sha},
            upload_checksum=True,  # tuspy sends sha1 per chunk, which tus servers must support
        )
        uploader.upload()
    assert uploader.offset == path.stat().st_size
    head = requests.head(uploader.url, headers=server.headers | {"Tus-Resumable": "1.0.0"}, timeout=30)
    assert head.headers["Vetpacs-Ingest"] == (f"stored; sop-instance-uid={ds.SOPInstanceUID}; sha256={sha}")
    assert _found_in_qido(server, ds)


@pytest.mark.requirement("R-6.2.1h")
def test_parts_uploaded_in_parallel_are_joined_and_archived(server, tmp_path):
    ds = build.image(rows=256, columns=256)
    data = build.to_bytes(ds)
    sha = hashlib.sha256(data).hexdigest()
    third = len(data) // 3
    pieces = [data[:third], data[third : 2 * third], data[2 * third :]]
    paths = []
    for i, piece in enumerate(pieces):
        paths.append(tmp_path / f"part{i}")
        paths[-1].write_bytes(piece)
    # tuspy sends its client headers on every request: Upload-Concat makes each upload a partial one.
    client = tus.TusClient(
        f"{server.url}/api/v1/uploads/", headers=server.headers | {"Upload-Concat": "partial"}
    )

    def send(path):
        with path.open("rb") as stream:
            uploader = client.uploader(file_stream=stream, chunk_size=16 * 1024)
            uploader.upload()
        return uploader.url

    with ThreadPoolExecutor(max_workers=3) as pool:
        urls = list(pool.map(send, paths))
    final = requests.post(
        f"{server.url}/api/v1/uploads/",
        headers=server.headers
        | {
            "Tus-Resumable": "1.0.0",
            "Upload-Concat": "final;" + " ".join(urls),
            "Upload-Metadata": f"sha256 {base64.b64encode(sha.encode()).decode()}",
        },
        timeout=60,
    )
    assert final.status_code == 201, final.text
    assert final.headers["Vetpacs-Ingest"].startswith(f"stored; sop-instance-uid={ds.SOPInstanceUID};")
    status = requests.get(
        requests.compat.urljoin(server.url, final.headers["Location"]), headers=server.headers, timeout=30
    ).json()
    assert status["state"] == "stored" and status["sha256"] == sha
    assert _found_in_qido(server, ds)


@pytest.mark.requirement("R-6.1.4")
def test_a_connection_cut_mid_chunk_resumes_from_the_bytes_that_arrived(server, tmp_path):
    ds = build.image(rows=256, columns=256)
    data = build.to_bytes(ds)
    tus_headers = server.headers | {"Tus-Resumable": "1.0.0"}
    created = requests.post(
        f"{server.url}/api/v1/uploads/", headers=tus_headers | {"Upload-Length": str(len(data))}, timeout=30
    )
    url = requests.compat.urljoin(server.url, created.headers["Location"])
    sent = 40_000
    # The whole file announced, 40 000 bytes sent, then the connection dropped (a cut network).
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = (
            f"PATCH {urlsplit(url).path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {server.headers['Authorization']}\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        sock.sendall(head.encode() + data[:sent])
    offset = None
    for _ in range(100):  # the server notices the cut when its read fails
        resp = requests.head(url, headers=tus_headers, timeout=30)
        offset = int(resp.headers["Upload-Offset"])
        if offset:
            break
        time.sleep(0.1)
    assert 0 < offset <= sent
    rest = requests.patch(
        url,
        data=data[offset:],
        headers=tus_headers
        | {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
        timeout=60,
    )
    assert rest.status_code == 204, rest.text
    assert rest.headers["Vetpacs-Ingest"].startswith(f"stored; sop-instance-uid={ds.SOPInstanceUID};")
