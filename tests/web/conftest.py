"""Callers of the pages: a signed-in user of the clinic (by role), of another clinic, of a chain."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client


def session_client(user) -> Client:
    """A client with a session for user, made directly (no login form, no login signals)."""
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = session_cookie(user)
    client.user = user  # type: ignore[attr-defined]
    return client


def session_cookie(user) -> str:
    """The session key of a fresh session signed in as user (also for browser tests' cookies)."""
    from importlib import import_module

    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return session.session_key


def _signed_in(organisation, username: str, role: str) -> Client:
    from vetpacs.apps.orgs.services import create_user

    user = create_user(
        username=username, password="Pw-" + username + "-0!", organisation=organisation, role=role
    )
    return session_client(user)


@pytest.fixture
def clinic_user_client(clinic):
    """The clinic's administrator: sees owners in full."""
    return _signed_in(clinic, "admin-li", "org_admin")


@pytest.fixture
def radiologist_client(clinic):
    """A radiologist of the clinic: owners masked (no patient.view_sensitive)."""
    return _signed_in(clinic, "rad-wang", "radiologist")


@pytest.fixture
def other_clinic_user_client(other_clinic):
    return _signed_in(other_clinic, "other-zhao", "org_admin")


@pytest.fixture
def signed_in(db):
    """signed_in(organisation, username, role) -> a client with that user's session."""
    return _signed_in
