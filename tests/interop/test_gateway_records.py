"""An order over MLLP, then its image by C-STORE without species: the platform gets the species (R-6.1.2).

A real `vetpacs-gateway run` with its HL7 listener, a real platform; the HIS's ORM^O01 is sent by
python-hl7's MLLP client, the image by a pynetdicom SCU, and the result read back over WADO-RS.
"""

from __future__ import annotations

import hl7
import pytest
from dicomweb_client import DICOMwebClient
from hl7.client import MLLPClient
from pynetdicom import AE

from tests.builders import dicom as build
from tests.gateway.process import make_gateway, platform_certificate
from tests.interop.conftest import free_port

pytestmark = [pytest.mark.slow]

# PID-8 'MN' (male, neutered), PID-35/36 species and breed as a Chinese HIS types them, NK1-2 the owner,
# ORC-12 the requesting vet, OBR-18 the accession number.
ORM = (
    "MSH|^~\\&|HIS|ANXIN|VETPACS|GW|20261204101600||ORM^O01|MSG-E2E-1|P|2.5|||||CHN|UNICODE UTF-8\r"
    "PID|1||PET-E2E^^^HIS||豆豆||20200101|MN|||||||||||||||||||||||||||^犬|^柯基\r"
    "NK1|1|王^芳|OWN||13900001111\r"
    "ORC|NW|PL9|FL9||||||||||D07^李^明\r"
    "OBR|1|PL9|FL9|DR^胸部正侧位||||||||||||D07^李^明||ACC-E2E-1"
)


@pytest.mark.requirement("R-6.1.2")
def test_order_over_mllp_fills_the_species_of_an_image_sent_without_it(tmp_path, platform_server):
    hl7_port = free_port()
    gateway = make_gateway(
        tmp_path,
        platform_server,
        platform_certificate(platform_server),
        ae_title="CLINIC_GW",
        hl7_host="127.0.0.1",
        hl7_port=hl7_port,
    )
    gateway.start()
    try:
        with MLLPClient("127.0.0.1", hl7_port) as client:
            ack = hl7.parse(client.send_message(ORM).decode())
        assert str(ack["MSA.1"]) == "AA", str(ack)

        ds = build.image(patient_id="PET-E2E", animal="豆豆", owner=None, species=None, breed=None)
        ds.AccessionNumber = "ACC-E2E-1"
        ds.ReferringPhysicianName = ""
        del ds.PatientSex
        ae = AE(ae_title="DR_ROOM1")
        ae.add_requested_context(ds.SOPClassUID, str(ds.file_meta.TransferSyntaxUID))
        assoc = ae.associate("127.0.0.1", gateway.dicom_port, ae_title="CLINIC_GW")
        assert assoc.is_established
        try:
            assert assoc.send_c_store(ds).Status == 0
        finally:
            assoc.release()
        gateway.wait_for(lambda s: s["counts"]["done"] == 1, what="the image done")

        entries = gateway.cli("status", "--entries", ds.StudyInstanceUID).stdout
        assert "enriched: from HIS records: " in entries and "PatientSpeciesDescription" in entries
        dicomweb = DICOMwebClient(url=platform_server.dicomweb_url, headers=platform_server.headers)
        got = dicomweb.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert got.PatientSpeciesDescription == "Canine"  # 犬, normalised as the platform indexes it
        assert got.PatientBreedDescription == "柯基"
        assert str(got.ReferringPhysicianName) == "李^明"
        assert got.PatientSex == "M" and got.PatientSexNeutered == "ALTERED"
        # The owner came from the record too, and reached the owning clinic (encrypted on the way).
        assert str(got.ResponsiblePerson) == "王^芳"
        assert str(got.PatientName) == "王^豆豆"
    finally:
        gateway.stop()
