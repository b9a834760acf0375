from django.apps import AppConfig


class AppKeysConfig(AppConfig):
    name = "vetpacs.apps.appkeys"
    label = "appkeys"
    verbose_name = "应用密钥 Application keys"
