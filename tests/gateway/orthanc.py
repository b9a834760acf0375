"""A real Orthanc (Debian package) as the clinic's PACS: its own config, storage dir and free ports."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ORTHANC_AET = "CLINICPACS"
needs_orthanc = pytest.mark.skipif(
    shutil.which("Orthanc") is None, reason="Orthanc (Debian package) not installed"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_orthanc(
    folder: Path, http_port: int, dicom_port: int, *, modalities: dict[str, list] | None = None
) -> subprocess.Popen:
    """Orthanc on loopback; `modalities` are the AEs it knows (a C-MOVE's destinations, C-GET callers)."""
    config = {
        "Name": "clinic-pacs",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AET,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": True,
        "DicomModalities": modalities or {},
        "Plugins": [],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "orthanc.json").write_text(json.dumps(config))
    proc = subprocess.Popen(
        ["Orthanc", str(folder / "orthanc.json")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{http_port}/system", timeout=1).ok:
                return proc
        except requests.RequestException:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("Orthanc did not start")


@dataclass
class Orthanc:
    http_port: int
    dicom_port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def store(self, data: bytes) -> None:
        """An instance into the PACS through its REST API (as a modality would have sent it)."""
        requests.post(f"{self.url}/instances", data=data, timeout=30).raise_for_status()

    def find_instance(self, sop_instance_uid: str) -> list:
        return requests.post(
            f"{self.url}/tools/find",
            json={"Level": "Instance", "Query": {"SOPInstanceUID": sop_instance_uid}},
            timeout=10,
        ).json()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def run_orthanc(folder: Path, *, modalities: dict[str, list] | None = None) -> Orthanc:
    http_port, dicom_port = free_port(), free_port()
    return Orthanc(http_port, dicom_port, start_orthanc(folder, http_port, dicom_port, modalities=modalities))
