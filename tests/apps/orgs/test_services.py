"""Bearer tokens: a checked token is trusted for a few seconds; revocation takes effect within that bound."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from vetpacs.apps.audit.models import AuditEvent
from vetpacs.apps.orgs import services
from vetpacs.apps.orgs.models import ApiToken, Organisation
from vetpacs.apps.orgs.services import PRINCIPAL_CACHE_SECONDS, authenticate_token


@pytest.fixture
def clock(monkeypatch):
    """The principal cache's monotonic clock, moved by hand."""

    class Clock:
        now = 1000.0

        def advance(self, seconds: float) -> None:
            self.now += seconds

    c = Clock()
    monkeypatch.setattr(services, "_monotonic", lambda: c.now)
    return c


def test_a_checked_token_is_trusted_without_the_database_for_a_few_seconds(
    token, clinic, clock, django_assert_num_queries
):
    first = authenticate_token(token)
    assert first is not None and first.organisation_ids == {clinic.id}
    with django_assert_num_queries(0):
        assert authenticate_token(token) == first
    clock.advance(PRINCIPAL_CACHE_SECONDS + 0.1)
    with django_assert_num_queries(2):  # the token, then the chain's member clinics
        assert authenticate_token(token) == first


def test_a_token_revoked_by_another_process_stops_working_within_the_bound(token, clock):
    assert authenticate_token(token) is not None
    # Another platform process revokes it: only the database changes, this process's cache does not.
    ApiToken.objects.update(revoked_at=timezone.now())
    clock.advance(PRINCIPAL_CACHE_SECONDS - 0.5)
    assert authenticate_token(token) is not None, "trusted up to the documented bound"
    clock.advance(0.6)
    assert authenticate_token(token) is None


def test_revoking_a_token_refuses_it_at_once_in_this_process_and_is_audited(token, clinic, clock):
    assert authenticate_token(token) is not None
    services.revoke_token(token=ApiToken.objects.get())
    assert authenticate_token(token) is None
    event = AuditEvent.objects.filter(action="token.revoked").get()
    assert event.organisation_id == clinic.id


def test_a_token_is_never_trusted_past_its_expiry(token, clock, monkeypatch):
    start = timezone.now()
    ApiToken.objects.update(expires_at=start + dt.timedelta(seconds=2))
    monkeypatch.setattr(services.timezone, "now", lambda: start)
    assert authenticate_token(token) is not None
    clock.advance(2.1)
    monkeypatch.setattr(services.timezone, "now", lambda: start + dt.timedelta(seconds=2.1))
    assert authenticate_token(token) is None


def test_a_chain_token_sees_a_new_member_clinic_within_the_bound(db, clock):
    chain = services.create_organisation(name="Chain", kind=Organisation.Kind.CHAIN)
    token = services.issue_token(organisation=chain, name="reading centre")
    assert authenticate_token(token).organisation_ids == {chain.id}
    member = services.create_organisation(name="Member", parent=chain)
    clock.advance(PRINCIPAL_CACHE_SECONDS + 0.1)
    assert authenticate_token(token).organisation_ids == {chain.id, member.id}


def test_an_unknown_token_is_refused_every_time(db, clock):
    for _ in range(2):
        assert authenticate_token("vp_not-a-token") is None
        assert authenticate_token("no-prefix") is None
