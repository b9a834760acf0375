from django.apps import AppConfig


class IdentityConfig(AppConfig):
    name = "vetpacs.apps.identity"
    label = "identity"
    verbose_name = "身份信息 Identity store"
