from django.apps import AppConfig


class ArchiveConfig(AppConfig):
    name = "vetpacs.apps.archive"
    label = "archive"
    verbose_name = "影像归档 Archive"
