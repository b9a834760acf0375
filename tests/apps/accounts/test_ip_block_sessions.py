"""An IP block cuts the connection (R-7.3.2.2a): sessions and tokens from a blocked address are
refused while the block lasts, with a clear answer, and the refusal is audited."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.apps.accounts.conftest import login
from vetpacs.apps.accounts import services
from vetpacs.apps.accounts.models import IpBlock
from vetpacs.apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.9"
ELSEWHERE = "198.51.100.20"


def _block(ip: str) -> None:
    """Failed logins from `ip` across accounts until the address is blocked (the real path)."""
    for n in range(25):
        services.record_login_failure(f"nobody-{n % 5}", ip)
        if IpBlock.objects.filter(ip=ip).exists():
            return
    raise AssertionError("the address was never blocked")


@pytest.mark.requirement("R-7.3.2.2a")
def test_a_signed_in_session_from_an_address_that_gets_blocked_is_refused(make_user, clinic, token):
    make_user("li", clinic)
    browser = Client(REMOTE_ADDR=ATTACKER)
    assert login(browser, "li", ip=ATTACKER).status_code == 302
    assert browser.get("/", REMOTE_ADDR=ATTACKER).status_code == 200
    assert (
        Client()
        .get("/dicomweb/studies", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=ATTACKER)
        .status_code
        == 200
    )

    _block(ATTACKER)

    page = browser.get("/", REMOTE_ADDR=ATTACKER)
    assert page.status_code == 403
    text = page.content.decode()
    assert "此网络地址已被封禁" in text and "This address is blocked" in text
    api = browser.get("/dicomweb/studies", REMOTE_ADDR=ATTACKER)
    assert api.status_code == 403 and api.json()["code"] == "ip_blocked"
    bearer = Client().get("/dicomweb/studies", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=ATTACKER)
    assert bearer.status_code == 403 and bearer["Content-Type"] == "application/problem+json"
    # The same session from another address, and anonymous pages from the blocked one, still answer.
    assert browser.get("/", REMOTE_ADDR=ELSEWHERE).status_code == 200
    assert Client().get("/login/", REMOTE_ADDR=ATTACKER).status_code == 200
    refused = AuditEvent.objects.filter(action="ip.request_refused", target=f"ip:{ATTACKER}")
    assert refused.count() >= 1 and refused.first().result == "refused"

    services.lift_ip_block(ip=ATTACKER, by=None)
    assert browser.get("/", REMOTE_ADDR=ATTACKER).status_code == 200


@pytest.mark.requirement("R-7.3.2.2a")
def test_an_expired_block_lets_the_session_through_again(make_user, clinic):
    from datetime import timedelta

    from django.utils import timezone

    make_user("wang", clinic)
    browser = Client()
    assert login(browser, "wang", ip=ATTACKER).status_code == 302
    _block(ATTACKER)
    assert browser.get("/", REMOTE_ADDR=ATTACKER).status_code == 403
    IpBlock.objects.filter(ip=ATTACKER).update(until=timezone.now() - timedelta(seconds=1))
    assert browser.get("/", REMOTE_ADDR=ATTACKER).status_code == 200


def test_the_check_reads_the_blocks_once_per_period(django_assert_num_queries, clinic):
    _block(ATTACKER)
    services.forget_ip_blocks()
    with django_assert_num_queries(1):
        for _ in range(50):
            assert services.address_blocked(ELSEWHERE) is None
