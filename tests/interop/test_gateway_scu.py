"""DCMTK storescu and a pynetdicom SCU send to a real `vetpacs-gateway run`; the platform has the images.

The instances reach the live platform's QIDO-RS with the same UIDs and pixels, the owner restored
for the owning clinic, while no byte the platform stored holds the owner's name in clear.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from dicomweb_client import DICOMwebClient
from pydicom.uid import ImplicitVRLittleEndian, JPEGLSLossless, RLELossless
from pynetdicom import AE

from tests.builders import dicom as build
from tests.gateway.process import GatewayProcess, make_gateway, platform_certificate

pytestmark = [pytest.mark.slow]

OWNER = "张伟"
PHONE = "13800138000"


@pytest.fixture(scope="module")
def platform_cert(platform_server) -> str:
    return platform_certificate(platform_server)


@pytest.fixture
def gateway(tmp_path, platform_server, platform_cert):
    gw = make_gateway(tmp_path, platform_server, platform_cert, ae_title="CLINIC_GW")
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def dicomweb(platform_server) -> DICOMwebClient:
    return DICOMwebClient(url=platform_server.dicomweb_url, headers=platform_server.headers)


def _images(n: int, **kwargs):
    return build.study(n, owner=OWNER, PatientTelephoneNumbers=PHONE, rows=256, columns=200, **kwargs)


def _done(n: int):
    return lambda s: s["counts"]["done"] == n


def _assert_on_platform(dicomweb, datasets, platform_server):
    study_uid = datasets[0].StudyInstanceUID
    found = dicomweb.search_for_instances(study_instance_uid=study_uid)
    assert sorted(i["00080018"]["Value"][0] for i in found) == sorted(d.SOPInstanceUID for d in datasets)
    [study] = dicomweb.search_for_studies(search_filters={"StudyInstanceUID": study_uid})
    # The owning clinic sees the owner restored: Patient's Name 'Owner^Pet' as the modality sent it.
    assert study["00100010"]["Value"][0]["Alphabetic"] == f"{OWNER}^Lucky"
    for ds in datasets:
        got = dicomweb.retrieve_instance(study_uid, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert got.SOPInstanceUID == ds.SOPInstanceUID
        assert np.array_equal(got.pixel_array, ds.pixel_array)
        assert str(got.ResponsiblePerson) == OWNER
        assert "EncryptedAttributesSequence" not in got
    # What the platform keeps on disk never names the owner in clear.
    for blob in (platform_server.data_dir / "blobs").rglob("*"):
        if blob.is_file():
            data = blob.read_bytes()
            assert OWNER.encode("utf-8") not in data, blob
            assert PHONE.encode() not in data, blob


@pytest.mark.requirement("R-6.1.1a")
@pytest.mark.requirement("R-6.1.3b")
@pytest.mark.requirement("R-6.1.3c")
def test_storescu_sends_to_the_gateway_and_the_platform_has_the_images(
    gateway: GatewayProcess, dicomweb, platform_server, tmp_path
):
    datasets = _images(3)
    folder = tmp_path / "outbox"
    folder.mkdir()
    files = [build.write(ds, folder) for ds in datasets]
    done = subprocess.run(
        ["storescu", "-aet", "DR_ROOM1", "-aec", "CLINIC_GW", "127.0.0.1", str(gateway.dicom_port)]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    gateway.wait_for(_done(3), what="3 done")
    _assert_on_platform(dicomweb, datasets, platform_server)
    entries = gateway.cli("status", "--entries", datasets[0].StudyInstanceUID).stdout
    for step in ("received", "validated", "normalised", "compressed", "protected", "confirmed"):
        assert f"{step}:" in entries
    # Every spool file went once the platform confirmed its SHA-256.
    assert list((gateway.config_dir / "spool" / "received").iterdir()) == []
    assert list((gateway.config_dir / "spool" / "ready").iterdir()) == []


@pytest.mark.requirement("R-6.1.1a")
@pytest.mark.requirement("R-6.1.3a")
def test_pynetdicom_scu_sends_in_several_transfer_syntaxes(
    gateway: GatewayProcess, dicomweb, platform_server
):  # noqa: E501
    datasets = _images(3)
    syntaxes = [ImplicitVRLittleEndian, RLELossless, JPEGLSLossless]
    for ds, ts in zip(datasets[1:], syntaxes[1:], strict=False):
        ds.compress(ts, generate_instance_uid=False)
    ae = AE(ae_title="US_ROOM2")
    for ds, ts in zip(datasets, syntaxes, strict=True):
        ae.add_requested_context(ds.SOPClassUID, ts)
    assoc = ae.associate("127.0.0.1", gateway.dicom_port, ae_title="CLINIC_GW")
    assert assoc.is_established
    try:
        statuses = [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()
    assert statuses == [0, 0, 0]
    gateway.wait_for(_done(3), what="3 done")
    _assert_on_platform(dicomweb, datasets, platform_server)
    # Uncompressed arrivals were stored as JPEG-LS lossless; RLE stayed as it came.
    got = dicomweb.retrieve_instance(
        datasets[0].StudyInstanceUID,
        datasets[0].SeriesInstanceUID,
        datasets[0].SOPInstanceUID,
        media_types=(("application/dicom", "*"),),
    )
    assert got.file_meta.TransferSyntaxUID == JPEGLSLossless


def test_calling_ae_not_on_the_allow_list_is_rejected(tmp_path, platform_server, platform_cert):
    gw = make_gateway(tmp_path, platform_server, platform_cert, allowed_calling_aes=["DR_ROOM1"])
    gw.start()
    try:
        ae = AE(ae_title="INTRUDER")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", gw.dicom_port)
        assert assoc.is_rejected
        ok = AE(ae_title="DR_ROOM1")
        ok.add_requested_context("1.2.840.10008.1.1")
        assoc = ok.associate("127.0.0.1", gw.dicom_port)
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        assoc.release()
    finally:
        gw.stop()
