"""Accounts: roles, login, MFA, password policy, lockout (R-7.3.2.1a-e, R-7.3.2.2a, R-6.2.6.3)."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "vetpacs.apps.accounts"
    label = "accounts"
    verbose_name = "账号 Accounts"

    def ready(self) -> None:
        from vetpacs.apps.accounts import signals  # noqa: F401 - connects the receivers
