"""Real-name verification gives a signing key; signatures verify, tampering shows; evidence stays."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction

from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.esign import services
from vetpacs.apps.esign.models import RealNameVerification, Signature, SigningKey
from vetpacs.core.errors import VetpacsError

pytestmark = pytest.mark.django_db
ID_NUMBER = "11010519491231002X"


@pytest.fixture
def radiologist():
    return get_user_model().objects.create_user(username="dr_zhang", password="x")


@pytest.mark.requirement("R-6.2.7a")
@pytest.mark.requirement("R-7.3.4.3b")
def test_a_verified_user_signs_and_the_signature_verifies(radiologist):
    key = services.verify_real_name(user=radiologist, name="张伟", id_number=ID_NUMBER, ip="10.0.0.8")
    assert len(bytes(key.public_key)) == 32
    report = "诊断意见：右前肢桡骨远端骨折。".encode()
    signature = services.sign(user=radiologist, payload=report, purpose="report.signed", target="report:42")
    assert services.verify(signature, report)
    assert not services.verify(signature, report + b" ")
    assert AuditEvent.objects.filter(action="signature.created", target="report:42").exists()


@pytest.mark.requirement("R-7.3.4.1c")
def test_the_private_key_and_the_id_number_are_not_stored_in_plain_text(radiologist):
    key = services.verify_real_name(user=radiologist, name="张伟", id_number=ID_NUMBER)
    check = key.verification
    assert ID_NUMBER.encode() not in bytes(check.sealed_id_number)
    assert "张伟".encode() not in bytes(check.sealed_name)
    assert len(bytes(key.sealed_private_key)) > 32  # sealed: version, nonce, ciphertext and tag
    assert services.real_name_of(radiologist) == ("张伟", ID_NUMBER)
    event = AuditEvent.objects.get(action="realname.verified")
    assert event.detail["id_number"] == "110***********002X"
    assert event.detail["name"] == "张*"


def test_a_user_without_real_name_cannot_sign(radiologist):
    with pytest.raises(VetpacsError) as caught:
        services.sign(user=radiologist, payload=b"x", purpose="report.signed")
    assert caught.value.code == "real_name_required"


def test_an_invalid_id_number_is_refused_before_the_provider_is_asked(radiologist):
    with pytest.raises(VetpacsError, match="校验码") as caught:
        services.verify_real_name(user=radiologist, name="张伟", id_number="110105194912310021")
    assert caught.value.code == "id_number_invalid"
    assert not RealNameVerification.objects.exists()


def test_a_refusal_by_the_provider_is_kept_as_evidence_and_gives_no_key(radiologist):
    with pytest.raises(VetpacsError) as caught:
        services.verify_real_name(user=radiologist, name="未通过张伟", id_number=ID_NUMBER)
    assert caught.value.code == "real_name_rejected"
    check = RealNameVerification.objects.get()
    assert not check.verified and len(check.evidence_sha256) == 64
    assert not SigningKey.objects.exists()
    assert AuditEvent.objects.filter(action="realname.rejected", result="failed").exists()


@pytest.mark.requirement("R-6.2.7a")
@pytest.mark.parametrize("table", ["esign_signature", "esign_signingkey", "esign_realnameverification"])
def test_the_evidence_tables_refuse_update_and_delete_in_the_database(radiologist, table):
    services.verify_real_name(user=radiologist, name="张伟", id_number=ID_NUMBER)
    services.sign(user=radiologist, payload=b"report", purpose="report.signed")
    for sql in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}"):  # noqa: S608 - fixed table names
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    with pytest.raises(PermissionError):
        Signature.objects.first().delete()
