from django.apps import AppConfig


class EsignConfig(AppConfig):
    name = "vetpacs.apps.esign"
    label = "esign"
    verbose_name = "实名与电子签名 Real name and e-signature"
