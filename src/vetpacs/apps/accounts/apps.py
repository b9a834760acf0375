from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "vetpacs.apps.accounts"
    label = "accounts"
    verbose_name = "账号 Accounts"
