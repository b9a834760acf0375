from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "vetpacs.apps.devices"
    label = "devices"
    verbose_name = "前置机网关 Gateways"
    default_auto_field = "django.db.models.BigAutoField"
