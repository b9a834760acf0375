from typing import Any

from django.apps import AppConfig
from django.db.models.signals import pre_save


def _seal_client_secret(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    """R-7.3.4.1c: a SocialApp's client secret is never saved in clear (services.seal_secret)."""
    from vetpacs.apps.sso import services

    if not raw and instance.secret and not instance.secret.startswith(services.SEALED_PREFIX):
        instance.secret = services.seal_secret(instance.secret)


class SsoConfig(AppConfig):
    name = "vetpacs.apps.sso"
    label = "sso"
    verbose_name = "单点登录 Single sign-on"

    def ready(self) -> None:
        from allauth.socialaccount.models import SocialApp

        pre_save.connect(_seal_client_secret, sender=SocialApp, dispatch_uid="vetpacs.sso.seal_client_secret")
