from django.apps import AppConfig


class SmsConfig(AppConfig):
    name = "vetpacs.apps.sms"
    label = "sms"
    verbose_name = "短信 SMS"
