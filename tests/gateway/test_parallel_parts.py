"""A large file goes as parallel tus partial uploads joined by a final upload; a small one in one upload.

Real processes: `vetpacs-gateway run` sends to a live `vetpacs serve` through a small HTTP proxy that
notes every request (method, Upload-Concat, body bytes), so the tests see what went over the line.
The threshold is 1 MiB here so that a multi-frame image of 4 MiB makes four parts.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from dicomweb_client import DICOMwebClient
from pynetdicom import AE

from tests.builders import dicom as build
from tests.gateway.process import GatewayProcess, make_gateway, platform_certificate, settled
from tests.interop.conftest import LiveServer, free_port, live_platform
from vetpacs.gateway.parallel_upload import Plan, _Window, recorded_plan, split, wanted
from vetpacs.gateway.queue import Queue
from vetpacs.gateway.uploader import UploaderSettings

MiB = 1024 * 1024
PARTS = 4
CHUNK = 65_536
MULTIFRAME_GREY_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"


@dataclass
class Seen:
    method: str
    path: str
    upload_concat: str
    body_bytes: int


class CountingProxy:
    """A plain HTTP/1.1 proxy in front of the platform that notes each request it passes on."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, method: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if method is None or s.method == method]

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _requests(self, src: socket.socket, dst: socket.socket) -> None:
        """Forward requests as they come, reading each one's headers and counting its body."""
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = src.recv(65536)
                    if not data:
                        return
                    buf += data
                end = buf.index(b"\r\n\r\n") + 4
                head, buf = buf[:end], buf[end:]
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                length = int(headers.get("content-length", "0"))
                with self._lock:
                    self.seen.append(Seen(method, path, headers.get("upload-concat", ""), length))
                dst.sendall(head)
                left = length
                while left:
                    if not buf:
                        buf = src.recv(65536)
                        if not buf:
                            return
                    piece, buf = buf[:left], buf[left:]
                    dst.sendall(piece)
                    left -= len(piece)
        except OSError:
            pass
        finally:
            _close(src, dst)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src, dst)

    def close(self) -> None:
        self._sock.close()


def _close(*socks: socket.socket) -> None:
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveServer]:
    with live_platform(tmp_path_factory.mktemp("gw-parts")) as (server, database):
        yield server


@pytest.fixture(scope="module")
def cert(live) -> str:
    return platform_certificate(live)


@pytest.fixture
def proxy(live) -> Iterator[CountingProxy]:
    p = CountingProxy(live.port)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def gateway_factory(tmp_path, live, cert, proxy):
    made: list[GatewayProcess] = []

    def make(**settings) -> GatewayProcess:
        settings = {
            "parallel_parts": PARTS,
            "parallel_parts_min_bytes": MiB,
            "chunk_size": CHUNK,
            "compress": False,  # the file's size stays what the test built
            **settings,
        }
        gw = make_gateway(tmp_path / f"g{len(made)}", live, cert, platform_url=proxy.url, **settings)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()


def multiframe(frames: int = 8, rows: int = 512, columns: int = 512):
    """A multi-frame 16-bit grey image of noise: 4 MiB of pixels that compress poorly."""
    ds = build.image(modality="OT", rows=rows, columns=columns)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MULTIFRAME_GREY_WORD_SC
    rng = np.random.default_rng(7)
    ds.NumberOfFrames = frames
    ds.PixelData = rng.integers(0, 4000, (frames, rows, columns), dtype=np.uint16).tobytes()
    return ds


def send(port: int, datasets) -> list[int]:
    ae = AE(ae_title="DR_ROOM1")
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, str(ds.file_meta.TransferSyntaxUID))
    assoc = ae.associate("127.0.0.1", port, ae_title="VETPACS_GW")
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def queue_rows(gw: GatewayProcess) -> list[sqlite3.Row]:
    with sqlite3.connect(gw.config_dir / "spool" / "queue.sqlite3", timeout=30) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM entries ORDER BY id").fetchall()


def parts_of(row: sqlite3.Row) -> list[dict]:
    return json.loads(row["upload_parts"])["parts"] if row["upload_parts"] else []


def watch_parts(gw: GatewayProcess, until, timeout: float = 120) -> tuple[sqlite3.Row, int]:
    """Poll the queue until `until(row)`; returns that row and the most parts seen half-sent at once."""
    deadline = time.monotonic() + timeout
    most = 0
    while time.monotonic() < deadline:
        rows = queue_rows(gw)
        if rows:
            row = rows[0]
            half_sent = [p for p in parts_of(row) if 0 < p["offset"] < p["length"]]
            most = max(most, len(half_sent))
            if until(row):
                return row, most
        time.sleep(0.05)
    raise AssertionError(f"the queue did not get there in {timeout}s: {[dict(r) for r in queue_rows(gw)]}")


def tus(live: LiveServer, method: str, url: str) -> requests.Response:
    headers = {**live.headers, "Tus-Resumable": "1.0.0"}
    # The gateway knows the uploads by the proxy's address; ask the platform itself.
    return requests.request(method, live.url + urlsplit(url).path, headers=headers, timeout=30)


def done(row) -> bool:
    return row["state"] == "done"


def part_bytes(proxy: CountingProxy) -> int:
    return sum(s.body_bytes for s in proxy.requests("PATCH"))


@pytest.mark.slow
@pytest.mark.requirement("R-6.2.1g")
def test_a_large_file_goes_as_parallel_parts_and_is_archived_as_sent(gateway_factory, live, proxy):
    gw = gateway_factory(bandwidth_bytes_per_s=2_000_000)
    gw.start()
    ds = multiframe()
    assert send(gw.dicom_port, [ds]) == [0]
    row, most_at_once = watch_parts(gw, done)
    size = row["upload_size"]
    assert size > 4 * MiB

    posts = proxy.requests("POST")
    assert [p.upload_concat for p in posts[:PARTS]] == ["partial"] * PARTS
    assert len(posts) == PARTS + 1
    assert posts[-1].upload_concat.startswith("final;")
    assert most_at_once >= 2, "the parts were sent one after another, not in parallel"
    assert part_bytes(proxy) == size  # every byte once
    assert sum(1 for s in proxy.requests("PATCH") if s.body_bytes > CHUNK) == 0

    # The platform joined the four recorded parts, in byte order, as the final upload.
    parts = parts_of(row)
    assert [p["length"] for p in parts] == [size // PARTS + (i < size % PARTS) for i in range(PARTS)]
    head = tus(live, "HEAD", row["upload_url"])
    named = head.headers["Upload-Concat"].removeprefix("final;").split()
    assert [urlsplit(u).path for u in named] == [urlsplit(p["url"]).path for p in parts]
    assert all(tus(live, "HEAD", p["url"]).status_code == 404 for p in parts)  # joined, then removed
    final = tus(live, "GET", row["upload_url"]).json()
    assert (final["state"], final["concat"], final["sha256"]) == ("stored", "final", row["upload_sha256"])
    assert json.loads(row["steps"])[-1]["step"] == "confirmed"

    dicomweb = DICOMwebClient(url=live.dicomweb_url, headers=live.headers)
    found = dicomweb.search_for_instances(study_instance_uid=ds.StudyInstanceUID)
    assert [i["00080018"]["Value"][0] for i in found] == [ds.SOPInstanceUID]
    got = dicomweb.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert np.array_equal(got.pixel_array, ds.pixel_array)
    assert list((gw.config_dir / "spool" / "received").iterdir()) == []


@pytest.mark.slow
def test_a_small_file_still_goes_as_one_upload(gateway_factory, live, proxy):
    gw = gateway_factory()
    gw.start()
    ds = build.image(rows=256, columns=256)  # 128 KiB: under the 1 MiB threshold
    assert send(gw.dicom_port, [ds]) == [0]
    row, _ = watch_parts(gw, done, timeout=60)
    assert row["upload_parts"] is None
    # One upload, no part nor final upload: creation-with-upload (the POST carries the first chunk),
    # then PATCHes of that same upload for the rest.
    [post] = proxy.requests("POST")
    assert (post.upload_concat, post.body_bytes) == ("", CHUNK)
    patches = proxy.requests("PATCH")
    assert len({p.path for p in patches}) == 1
    assert post.body_bytes + part_bytes(proxy) == row["upload_size"]
    dicomweb = DICOMwebClient(url=live.dicomweb_url, headers=live.headers)
    found = dicomweb.search_for_instances(study_instance_uid=ds.StudyInstanceUID)
    assert [i["00080018"]["Value"][0] for i in found] == [ds.SOPInstanceUID]


def sent_part_way(row) -> bool:
    parts = parts_of(row)
    sent = sum(p["offset"] for p in parts)
    return (
        row["state"] == "uploading" and parts and 0.15 * row["upload_size"] < sent < 0.6 * row["upload_size"]
    )


@pytest.mark.slow
@pytest.mark.requirement("R-6.2.1h")
@pytest.mark.requirement("R-6.1.4")
def test_kill_9_mid_transfer_resumes_each_part_at_its_offset(gateway_factory, live, proxy):
    gw = gateway_factory(bandwidth_bytes_per_s=600_000)
    gw.start()
    ds = multiframe()
    assert send(gw.dicom_port, [ds]) == [0]
    before, _ = watch_parts(gw, sent_part_way, timeout=60)
    gw.kill()
    before = queue_rows(gw)[0]  # what the queue holds after the kill
    confirmed = sum(p["offset"] for p in parts_of(before))
    assert confirmed > 0
    proxy.clear()

    gw.start()
    after, _ = watch_parts(gw, done)
    size = after["upload_size"]
    # Each part went on from where the platform had it: the bytes sent again are what was missing.
    assert part_bytes(proxy) <= size - confirmed < size
    assert [p.upload_concat for p in proxy.requests("POST")] == []  # no part nor final made again
    assert after["upload_url"] == before["upload_url"]
    assert [p["url"] for p in parts_of(after)] == [p["url"] for p in parts_of(before)]
    assert after["steps"].count('"upload_created"') == 1
    dicomweb = DICOMwebClient(url=live.dicomweb_url, headers=live.headers)
    found = dicomweb.search_for_instances(study_instance_uid=ds.StudyInstanceUID)
    assert [i["00080018"]["Value"][0] for i in found] == [ds.SOPInstanceUID]  # once: no loss, no duplicate
    got = dicomweb.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert np.array_equal(got.pixel_array, ds.pixel_array)
    assert list((gw.config_dir / "spool" / "received").iterdir()) == []


@pytest.mark.slow
@pytest.mark.requirement("R-6.2.1h")
def test_a_part_the_platform_no_longer_knows_starts_again(gateway_factory, live, proxy):
    gw = gateway_factory(bandwidth_bytes_per_s=600_000)
    gw.start()
    ds = multiframe()
    assert send(gw.dicom_port, [ds]) == [0]
    watch_parts(gw, sent_part_way, timeout=60)
    gw.kill()
    before = queue_rows(gw)[0]
    parts = parts_of(before)
    # The platform forgets the first part (as its expiry would): tus termination, once the request
    # the killed gateway left half-read lets go of the part (423 until then).
    deadline = time.monotonic() + 30
    while (gone := tus(live, "DELETE", parts[0]["url"])).status_code == 423 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gone.status_code == 204
    kept = sum(p["offset"] for p in parts[1:])
    proxy.clear()

    gw.start()
    after, _ = watch_parts(gw, done)
    size = after["upload_size"]
    assert part_bytes(proxy) <= size - kept
    assert part_bytes(proxy) >= parts[0]["length"]  # the forgotten part went again, whole
    # One new part and one new final upload naming it with the surviving three.
    assert [p.upload_concat.split(";")[0] for p in proxy.requests("POST")] == ["partial", "final"]
    assert proxy.requests("DELETE")  # the old final upload was let go
    now = parts_of(after)
    assert now[0]["url"] != parts[0]["url"]
    assert [p["url"] for p in now[1:]] == [p["url"] for p in parts[1:]]
    assert after["upload_url"] != before["upload_url"]
    assert "was gone" in after["steps"]
    dicomweb = DICOMwebClient(url=live.dicomweb_url, headers=live.headers)
    found = dicomweb.search_for_instances(study_instance_uid=ds.StudyInstanceUID)
    assert [i["00080018"]["Value"][0] for i in found] == [ds.SOPInstanceUID]


@pytest.mark.slow
@pytest.mark.requirement("R-6.1.4")
def test_stop_halts_every_part_between_chunks_and_resume_finishes(gateway_factory, live, proxy):
    gw = gateway_factory(bandwidth_bytes_per_s=600_000)
    gw.start()
    ds = multiframe()
    assert send(gw.dicom_port, [ds]) == [0]
    watch_parts(gw, sent_part_way, timeout=60)
    assert "stop: " in gw.cli("stop", "--all").stdout
    watch_parts(gw, lambda r: r["state"] == "stopped", timeout=30)
    landed = settled(lambda: part_bytes(proxy))  # chunks already on the wire when the stop came
    time.sleep(2.0)
    assert part_bytes(proxy) == landed  # no part sends while stopped
    assert queue_rows(gw)[0]["state"] == "stopped"
    gw.cli("resume", "--all")
    watch_parts(gw, done)
    dicomweb = DICOMwebClient(url=live.dicomweb_url, headers=live.headers)
    found = dicomweb.search_for_instances(study_instance_uid=ds.StudyInstanceUID)
    assert [i["00080018"]["Value"][0] for i in found] == [ds.SOPInstanceUID]


def test_parts_cover_the_file_in_byte_order_as_evenly_as_can_be():
    parts = split(10, 4)
    assert [(p.start, p.length) for p in parts] == [(0, 3), (3, 3), (6, 2), (8, 2)]
    assert [p.length for p in split(3, 4)] == [1, 1, 1]


def test_a_window_reads_only_its_range_of_the_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(bytes(range(100)))
    with path.open("rb") as f:
        w = _Window(f, 10, 20)
        assert w.seek(0, 2) == 20
        w.seek(15)
        assert w.read() == bytes(range(25, 30))
        w.seek(0)
        assert w.read(5) == bytes(range(10, 15))
        assert w.tell() == 5


def _queue_with_entry(tmp_path, **fields) -> Queue:
    queue = Queue(tmp_path / "queue.sqlite3")
    entry_id = queue.add(
        sop_instance_uid="1.2.3",
        study_instance_uid="1.2",
        received_path=tmp_path / "r.dcm",
        received_sha256="0" * 64,
        received_size=10,
        source="test",
    )
    queue.update(entry_id, upload_path=str(tmp_path / "u.dcm"), upload_sha256="1" * 64, **fields)
    return queue


def test_parts_count_only_while_they_belong_to_the_entry_upload(tmp_path):
    settings = UploaderSettings("http://p", "t", parallel_parts=4, parallel_parts_min_bytes=8)
    plan = Plan("http://p/api/v1/uploads/f", split(10, 4))
    queue = _queue_with_entry(tmp_path, upload_size=10, upload_url=plan.final, upload_parts=plan.dumps())
    [entry] = queue.entries()
    assert recorded_plan(entry) == plan
    assert wanted(entry, settings)
    # The uploader cleared upload_url (a refusal, a new preparation): the parts count for nothing.
    queue.update(entry.id, upload_url=None, upload_size=4)
    [entry] = queue.entries()
    assert recorded_plan(entry) is None
    assert not wanted(entry, settings)  # 4 bytes: under the threshold, one upload
    queue.update(entry.id, upload_size=10)
    assert wanted(queue.entries()[0], settings)
    # A single upload under way goes on as it began, whatever the threshold says now.
    queue.update(entry.id, upload_url="http://p/api/v1/uploads/single")
    assert not wanted(queue.entries()[0], settings)
    queue.close()


def test_a_queue_file_made_before_parts_gets_the_column(tmp_path):
    path = tmp_path / "queue.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE entries (id INTEGER PRIMARY KEY, sop_instance_uid TEXT NOT NULL,"
            " study_instance_uid TEXT NOT NULL, series_instance_uid TEXT NOT NULL DEFAULT '',"
            " sop_class_uid TEXT NOT NULL DEFAULT '', patient_id TEXT NOT NULL DEFAULT '',"
            " study_date TEXT NOT NULL DEFAULT '', study_description TEXT NOT NULL DEFAULT '',"
            " modality TEXT NOT NULL DEFAULT '', source TEXT NOT NULL, received_path TEXT NOT NULL,"
            " received_sha256 TEXT NOT NULL, received_size INTEGER NOT NULL, upload_path TEXT,"
            " upload_sha256 TEXT, upload_size INTEGER, state TEXT NOT NULL, steps TEXT NOT NULL DEFAULT '[]',"
            " reason TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL,"
            " upload_url TEXT, bytes_sent INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,"
            " updated_at REAL NOT NULL, done_at REAL)"
        )
        db.execute(
            "INSERT INTO entries (sop_instance_uid, study_instance_uid, source, received_path,"
            " received_sha256, received_size, state, created_at, updated_at)"
            " VALUES ('1.2.3', '1.2', 'scp', '/r', '0', 1, 'pending', 0, 0)"
        )
    queue = Queue(path)
    [entry] = queue.entries()
    assert entry.upload_parts is None
    queue.update(entry.id, upload_parts="{}")
    assert queue.get(entry.id).upload_parts == "{}"
    Queue(path).close()  # a second opening finds the column there
    queue.close()
