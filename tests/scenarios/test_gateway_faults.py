"""The gateway under faults, with real processes: platform down, kill -9, damaged chunk, full disk, stop.

Every scenario runs `vetpacs-gateway run` against a live `vetpacs serve`, sends real DICOM to the
gateway's SCP and checks what the platform finally holds: every instance once, none lost.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from pynetdicom import AE

from tests.builders import dicom as build
from tests.gateway.process import GatewayProcess, make_gateway, platform_certificate, settled
from tests.interop.conftest import LiveServer, free_port, live_platform

pytestmark = [pytest.mark.slow]

SLOW_LINK = 100_000  # bytes/s: slow enough to catch an upload half-way
CHUNK = 65_536


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveServer]:
    with live_platform(tmp_path_factory.mktemp("gw-faults")) as (server, database):
        yield server


@pytest.fixture(scope="module")
def cert(live) -> str:
    return platform_certificate(live)


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


def images(n: int):
    # 512x256 noisy 12-bit images: about 256 KB each, hardly compressible, so uploads take a while.
    return build.study(n, rows=512, columns=256)


def on_platform(server: LiveServer, study_uid: str) -> list[str]:
    resp = requests.get(
        f"{server.dicomweb_url}/studies/{study_uid}/instances", headers=server.headers, timeout=30
    )
    if resp.status_code == 204:
        return []
    resp.raise_for_status()
    return [i["00080018"]["Value"][0] for i in resp.json()]


def queue_rows(gw: GatewayProcess) -> list[sqlite3.Row]:
    with sqlite3.connect(gw.config_dir / "spool" / "queue.sqlite3", timeout=30) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM entries ORDER BY id").fetchall()


def all_done(n: int):
    return lambda s: s["counts"]["done"] == n


def uploading_half_way(s) -> bool:
    return (
        any(0 < st["bytes_sent"] < st["bytes_total"] for st in s["studies"]) and s["counts"]["uploading"] > 0
    )


@pytest.fixture
def gateway_factory(tmp_path, live, cert):
    made: list[GatewayProcess] = []

    def make(**settings) -> GatewayProcess:
        gw = make_gateway(tmp_path / f"g{len(made)}", live, cert, **settings)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()


@pytest.mark.requirement("R-6.1.4")
def test_platform_stopped_mid_upload_shows_upload_failed_then_completes(tmp_path_factory):
    with live_platform(tmp_path_factory.mktemp("gw-down")) as (server, _):
        gw = make_gateway(
            tmp_path_factory.mktemp("gw"),
            server,
            platform_certificate(server),
            bandwidth_bytes_per_s=SLOW_LINK,
            chunk_size=CHUNK,
            parallel_uploads=2,
        )
        try:
            gw.start()
            datasets = images(4)
            assert send(gw.dicom_port, datasets) == [0] * 4
            gw.wait_for(uploading_half_way, what="an upload half-way")
            server.stop()
            status = gw.wait_for(lambda s: s["failures"] > 0, what="upload failed shown")
            assert status["last_failure"].startswith("上传失败 / upload failed: ")
            assert "连接失败 / connection failed" in status["last_failure"]
            assert "上传失败 / upload failed" in gw.cli("status").stdout
            server.start()
            gw.wait_for(all_done(4), timeout=120, what="all done after the platform came back")
            assert sorted(on_platform(server, datasets[0].StudyInstanceUID)) == sorted(
                d.SOPInstanceUID for d in datasets
            )
        finally:
            gw.stop()


@pytest.mark.requirement("R-6.1.4")
@pytest.mark.requirement("R-6.2.1h")
def test_kill_9_of_the_gateway_mid_upload_resumes_without_loss_or_duplicate(gateway_factory, live):
    gw = gateway_factory(bandwidth_bytes_per_s=SLOW_LINK, chunk_size=CHUNK, parallel_uploads=2)
    gw.start()
    datasets = images(5)
    assert send(gw.dicom_port, datasets) == [0] * 5
    gw.wait_for(uploading_half_way, what="an upload half-way")
    gw.kill()
    half_way = [
        r for r in queue_rows(gw) if r["upload_url"] and 0 < r["bytes_sent"] < (r["upload_size"] or 0)
    ]
    assert half_way, "the kill came before any upload was half-way"
    gw.start()
    gw.wait_for(all_done(5), timeout=120, what="all done after the restart")
    uids = on_platform(live, datasets[0].StudyInstanceUID)
    assert sorted(uids) == sorted(d.SOPInstanceUID for d in datasets)  # none lost, none twice
    rows = {r["id"]: r for r in queue_rows(gw)}
    for before in half_way:
        after = rows[before["id"]]
        # Resumed at the platform's offset on the same upload, not sent again from byte 0.
        assert after["upload_url"] is None or after["upload_url"] == before["upload_url"]
        assert after["steps"].count('"upload_created"') == 1
    assert list((gw.config_dir / "spool" / "received").iterdir()) == []


class CorruptingProxy:
    """A TCP proxy in front of the platform that flips one byte in the body of the first PATCH."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.corrupted = 0
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_platform: bool) -> None:
        buf = b""
        watching = to_platform
        flip_next = False
        try:
            while data := src.recv(65536):
                if watching and self.corrupted:
                    watching = False
                if watching and flip_next:
                    data, watching, flip_next = self._flip(data, 0), False, False
                elif watching:
                    buf += data
                    while watching and (end := buf.find(b"\r\n\r\n")) >= 0:
                        head, buf = buf[:end], buf[end + 4 :]
                        # A POST's body (its first chunk) may come before the PATCH in the stream.
                        if b"PATCH /api/v1/uploads/" in head:
                            # The body starts right after the headers: here, or in the next packet.
                            if buf:
                                data, watching = self._flip(data, len(data) - len(buf)), False
                            else:
                                flip_next = True
                            break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _flip(self, data: bytes, at: int) -> bytes:
        with self._lock:
            if self.corrupted:
                return data
            self.corrupted += 1
        return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]

    def close(self) -> None:
        self._stop = True
        self._sock.close()


@pytest.mark.requirement("R-6.2.1g")
def test_a_chunk_damaged_on_the_way_is_refused_and_sent_again(gateway_factory, live):
    proxy = CorruptingProxy(live.port)
    try:
        gw = gateway_factory(platform_url=proxy.url, chunk_size=CHUNK, parallel_uploads=1)
        gw.start()
        datasets = images(2)
        assert send(gw.dicom_port, datasets) == [0, 0]
        gw.wait_for(all_done(2), timeout=90, what="both done")
        assert proxy.corrupted == 1
        assert "failed its checksum; sending it again" in gw.log_tail(20000)
        assert sorted(on_platform(live, datasets[0].StudyInstanceUID)) == sorted(
            d.SOPInstanceUID for d in datasets
        )
    finally:
        proxy.close()


def test_full_disk_gets_out_of_resources_and_nothing_is_queued(gateway_factory):
    gw = gateway_factory(min_free_bytes=10**18)
    gw.start()
    assert send(gw.dicom_port, [build.image()]) == [0xA700]
    folder = gw.config_dir / "out"
    folder.mkdir()
    path = build.write(build.image(), folder)
    done = subprocess.run(
        ["storescu", "-v", "-aec", "VETPACS_GW", "127.0.0.1", str(gw.dicom_port), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    said = (done.stdout + done.stderr).lower().replace(" ", "")
    assert done.returncode != 0
    assert "outofresources" in said or "a700" in said, said
    assert gw.status()["counts"]["pending"] == 0
    assert list((gw.config_dir / "spool" / "received").iterdir()) == []


@pytest.mark.requirement("R-6.1.4")
def test_stop_then_resume(gateway_factory, live):
    gw = gateway_factory(bandwidth_bytes_per_s=SLOW_LINK, chunk_size=CHUNK, parallel_uploads=1)
    gw.start()
    datasets = images(4)
    assert send(gw.dicom_port, datasets) == [0] * 4
    gw.wait_for(uploading_half_way, what="an upload half-way")
    assert "stop: " in gw.cli("stop", "--all").stdout
    stopped = gw.wait_for(lambda s: s["counts"]["uploading"] == 0, what="uploads stopped")
    assert stopped["counts"]["stopped"] + stopped["counts"]["done"] == 4
    # A chunk already on the wire when the stop came still lands.
    sent = settled(lambda: [st["bytes_sent"] for st in gw.status()["studies"]])
    time.sleep(2)
    later = gw.status()
    assert [st["bytes_sent"] for st in later["studies"]] == sent  # nothing moves while stopped
    assert later["counts"]["stopped"] == stopped["counts"]["stopped"]
    gw.cli("resume", "--study", datasets[0].StudyInstanceUID)
    gw.wait_for(all_done(4), timeout=120, what="all done after resume")
    assert len(on_platform(live, datasets[0].StudyInstanceUID)) == 4
