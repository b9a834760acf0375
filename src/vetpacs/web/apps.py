from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "vetpacs.web"
    label = "web"
    verbose_name = "网页 Web"
