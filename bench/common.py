"""Shared benchmark plumbing: start vetpacs and Orthanc on loopback, make 250 KB images, time clients."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
ORTHANC = "/usr/sbin/Orthanc"
ORTHANC_DICOMWEB = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, headers: dict[str, str] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback http only
            with urllib.request.urlopen(req, timeout=2) as r:  # noqa: S310 - loopback only
                if r.status < 500:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


def image_250kb(i: int, study_uid: str, series_uid: str) -> bytes:
    """An uncompressed 16-bit DX image of 354x354 (about 250 KB), as a DR sends it."""
    from pydicom.uid import generate_uid
    from tests.builders import dicom as build

    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:354, 0:354]
    pixels = ((x * 7 + y * 3) % 4096 + rng.integers(0, 64, (354, 354))).astype(np.uint16)
    ds = build.image(
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=generate_uid(),
        pixels=pixels,
        InstanceNumber=i + 1,
        patient_id=f"BENCH-{i // 50}",
    )
    return build.to_bytes(ds)


def corpus(n: int, per_study: int = 10) -> list[bytes]:
    from pydicom.uid import generate_uid

    out = []
    for i in range(n):
        if i % per_study == 0:
            study, series = generate_uid(), generate_uid()
        out.append(image_250kb(i, study, series))
    return out


def multipart(parts: list[bytes], boundary: str = "vetpacs-bench-boundary") -> tuple[bytes, str]:
    buf = io.BytesIO()
    for p in parts:
        buf.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode())
        buf.write(p)
        buf.write(b"\r\n")
    buf.write(f"--{boundary}--\r\n".encode())
    return buf.getvalue(), f'multipart/related; type="application/dicom"; boundary={boundary}'


@dataclass
class Server:
    name: str
    base: str  # DICOMweb root
    headers: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    workdir: Path | None = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def vetpacs_server(workers: int | None = None, database_url: str | None = None) -> Iterator[Server]:
    """`vetpacs serve` on a fresh data directory; `workers` None: as many as `vetpacs serve` starts."""
    work = Path(tempfile.mkdtemp(prefix="vetpacs-bench-"))
    env = {**os.environ, "VETPACS_DATA_DIR": str(work), "VETPACS_LOG_LEVEL": "ERROR"}
    if database_url:
        env["VETPACS_DATABASE_URL"] = database_url
    cli = str(BIN / "vetpacs")

    def run(*args: str) -> str:
        return subprocess.run([cli, *args], env=env, check=True, capture_output=True, text=True).stdout

    run("migrate", "--verbosity", "0")
    run("create-org", "Bench Clinic")
    token = run("create-token", "--org", "Bench Clinic").strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen(
        [cli, "serve", "--host", "127.0.0.1", "--port", str(port)]
        + (["--workers", str(workers)] if workers else []),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Server(
        "vetpacs", f"http://127.0.0.1:{port}/dicomweb", {"Authorization": f"Bearer {token}"}, proc, work
    )
    try:
        wait_http(server.base + "/studies?limit=1", server.headers)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def orthanc_server() -> Iterator[Server]:
    if not Path(ORTHANC).exists():
        raise RuntimeError("Orthanc is not installed (Debian packages orthanc, orthanc-dicomweb)")
    work = Path(tempfile.mkdtemp(prefix="orthanc-bench-"))
    port, dicom_port = free_port(), free_port()
    config = {
        "Name": "bench",
        "StorageDirectory": str(work / "db"),
        "IndexDirectory": str(work / "db"),
        "HttpPort": port,
        "DicomPort": dicom_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [ORTHANC_DICOMWEB],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "HttpThreadsCount": 50,
        "StorageCompression": False,
        "ConcurrentJobs": 2,
    }
    (work / "orthanc.json").write_text(json.dumps(config))
    proc = subprocess.Popen(
        [ORTHANC, str(work / "orthanc.json")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = Server("orthanc", f"http://127.0.0.1:{port}/dicom-web", {}, proc, work)
    try:
        wait_http(f"http://127.0.0.1:{port}/system")
        yield server
    finally:
        server.stop()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] if len(values) > 1 else values[0]
    )
