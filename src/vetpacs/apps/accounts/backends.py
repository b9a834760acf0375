"""allauth's authentication backend, finding an account by e-mail through the sealed address's blind
index (R-7.3.4.1c): auth_user.email is kept empty, so allauth's own lookup would find nobody."""

from __future__ import annotations

from typing import Any

from allauth.account import app_settings
from allauth.account.app_settings import LoginMethod
from allauth.account.auth_backends import AuthenticationBackend as AllauthBackend


class AuthenticationBackend(AllauthBackend):
    def _authenticate_by_email(self, email: str, password: str) -> Any | None:
        if not email or "@" not in email or LoginMethod.EMAIL not in app_settings.LOGIN_METHODS:
            return None
        from vetpacs.apps.accounts import services

        return self._check_password(services.user_by_email(email), password)
