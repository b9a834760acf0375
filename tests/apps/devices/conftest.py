"""Fixtures for gateways: a registered gateway, an enrolled one, and a client holding its secret."""

from __future__ import annotations

import pytest
from django.test import Client

from vetpacs.apps.devices import services


@pytest.fixture
def registered(clinic):
    gateway, code = services.register_gateway(
        organisation_id=clinic.id, name="放射科前置机", actor=services.Actor(user_id=None, label="test")
    )
    return gateway, code


@pytest.fixture
def enrolled(registered):
    _, code = registered
    return services.enrol(code=code, hostname="clinic-pc", version="0.1.0")


@pytest.fixture
def gateway_client(db, enrolled):
    return Client(HTTP_AUTHORIZATION=f"Bearer {enrolled['secret']}")


@pytest.fixture(autouse=True)
def _fresh_device_caches():
    services.reset_caches()
    yield
    services.reset_caches()
