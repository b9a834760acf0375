from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "vetpacs.apps.uploads"
    label = "uploads"
    verbose_name = "断点续传 Uploads"
