"""HL7 v2 over MLLP: a real client sends ADT and ORM; records are stored, acknowledged, and enrich studies."""

from __future__ import annotations

import hl7
import pytest
from hl7.client import MLLPClient
from pydicom import Dataset

from vetpacs.gateway.hl7 import Hl7Listener
from vetpacs.gateway.records import RecordError, RecordStore

ADT = (
    "MSH|^~\\&|HIS|ANXIN|VETPACS|GW|20261204101500||ADT^A04|MSG0001|P|2.5\r"
    "PID|1||P-100^^^HIS||Lucky^Wang||20200101|M|||||||||||||||||||||||||||^Canine|^Beagle\r"
    "NK1|1|Wang^Fang|OWN"
)
ORM = (
    "MSH|^~\\&|HIS|ANXIN|VETPACS|GW|20261204101600||ORM^O01|MSG0002|P|2.5\r"
    "PID|1||P-100^^^HIS||Lucky^Wang\r"
    "ORC|NW|PL1|FL1||||||||||D01^Li^Ming\r"
    "OBR|1|PL1|FL1|XR^Thorax 胸部||||||||||||D01^Li^Ming||ACC-777"
)


@pytest.fixture
def listener(tmp_path):
    store = RecordStore(tmp_path / "records.sqlite3")
    server = Hl7Listener(store, host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


def _send(listener, text):
    with MLLPClient("127.0.0.1", listener.port) as client:
        return hl7.parse(client.send_message(text).decode())


@pytest.mark.requirement("R-6.1.2")
def test_adt_and_orm_are_acknowledged_and_enrich_a_later_study(listener):
    assert str(_send(listener, ADT)["MSA.1"]) == "AA"
    ack = _send(listener, ORM)
    assert str(ack["MSA.1"]) == "AA" and str(ack["MSA.2"]) == "MSG0002"
    ds = Dataset()
    ds.PatientID, ds.AccessionNumber, ds.PatientName = "P-100", "ACC-777", ""
    filled = listener.store.enrich(ds)
    assert "PatientSpeciesDescription" in filled
    assert ds.PatientSpeciesDescription == "Canine" and ds.PatientBreedDescription == "Beagle"
    assert str(ds.ResponsiblePerson) == "Wang^Fang" and str(ds.ReferringPhysicianName) == "Li^Ming"
    assert ds.StudyDescription == "Thorax 胸部"


def test_unsupported_message_gets_ae_with_the_reason(listener):
    ack = _send(listener, ADT.replace("ADT^A04", "ADT^A40"))
    assert str(ack["MSA.1"]) == "AE" and "not accepted" in str(ack["MSA.3"])


def test_message_without_patient_id_gets_ae(listener):
    ack = _send(listener, ADT.replace("P-100^^^HIS", ""))
    assert str(ack["MSA.1"]) == "AE" and "PID-3" in str(ack["MSA.3"])
    assert listener.store.pending() == []


def test_resent_message_is_stored_once(listener):
    _send(listener, ADT)
    _send(listener, ADT)
    assert len(listener.store.pending()) == 1


def test_csv_drop_file_with_chinese_headers_imports(tmp_path):
    store = RecordStore(tmp_path / "r.sqlite3")
    (tmp_path / "orders.csv").write_text(
        "患宠编号,宠物名,物种,品种,主人,检查号,申请医生\nP-5,Mimi,Feline,Persian,Zhao^Lei,ACC-5,Dr^Wu\n",
        encoding="utf-8-sig",
    )
    assert store.import_file(tmp_path / "orders.csv") == 1
    assert store.lookup(accession_number="ACC-5")["breed"] == "Persian"
    assert store.pending()[0]["kind"] == "order"


def test_json_drop_file_without_patient_id_names_the_record(tmp_path):
    store = RecordStore(tmp_path / "r.sqlite3")
    (tmp_path / "p.json").write_text('[{"patient_id": "P-1"}, {"species": "Canine"}]')
    with pytest.raises(RecordError, match="record 2"):
        store.import_file(tmp_path / "p.json")


@pytest.fixture
def platform(live_server, transactional_db):
    from vetpacs.apps.devices import services
    from vetpacs.apps.orgs.services import create_organisation

    services.reset_caches()
    clinic = create_organisation(name="Records Clinic")
    _, code = services.register_gateway(
        organisation_id=clinic.id, name="gw", actor=services.Actor(user_id=None, label="test")
    )
    secret = services.enrol(code=code)["secret"]
    yield live_server.url, clinic, secret
    services.reset_caches()


@pytest.mark.requirement("R-6.1.2")
def test_records_from_mllp_and_a_drop_folder_reach_the_platform(platform, tmp_path):
    import time

    from vetpacs.apps.devices.models import Record
    from vetpacs.gateway.credentials import Credentials
    from vetpacs.gateway.hl7 import RecordsService

    url, clinic, secret = platform
    store = RecordStore(tmp_path / "records.sqlite3")
    service = RecordsService(
        store,
        credentials=Credentials(url, "gw", secret, b""),
        hl7_host="127.0.0.1",
        hl7_port=0,
        drop_folder=tmp_path / "drop",
        upload_interval_s=0.2,
    )
    service.start()
    try:
        service.watcher.settle_s = 0.2
        with MLLPClient("127.0.0.1", service.listener.port) as client:
            assert b"MSA|AA" in client.send_message(ORM)
        (tmp_path / "drop" / "patients.json").write_text('[{"patient_id": "P-7", "species": "Feline"}]')

        # Watched on the gateway's side: the test server's request threads share this test's SQLite
        # connection, so the platform's database is read once the gateway has stopped.
        def both_sent() -> bool:
            received = store.lookup(accession_number="ACC-777") and store.lookup(patient_id="P-7")
            return bool(received) and not store.pending()

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not both_sent():
            time.sleep(0.1)
    finally:
        service.stop()
    order = Record.objects.get(organisation=clinic, kind="order")
    assert order.accession_number == "ACC-777" and order.data["referring_physician_name"] == "Li^Ming"
    assert Record.objects.get(organisation=clinic, kind="patient").data["species"] == "Feline"
    assert (tmp_path / "drop" / "processed").exists()
