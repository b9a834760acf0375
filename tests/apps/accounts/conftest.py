"""Helpers for account tests: users by role, and logins through the real login page."""

from __future__ import annotations

import pytest
from django.test import Client

PASSWORD = "Xq7!vetPacs"


@pytest.fixture
def make_user(db):
    from vetpacs.apps.orgs.services import create_user

    def _make(username: str, organisation, role: str = "radiologist", password: str = PASSWORD, **fields):
        user = create_user(username=username, password=password, organisation=organisation, role=role)
        for name, value in fields.items():
            setattr(user, name, value)
        if fields:
            user.save()
        return user

    return _make


def login(
    client: Client, login_name: str, password: str = PASSWORD, ip: str = "10.0.0.1", follow: bool = False
):
    """Post the login page as a browser at `ip` would."""
    return client.post(
        "/login/", {"username": login_name, "password": password}, REMOTE_ADDR=ip, follow=follow
    )
