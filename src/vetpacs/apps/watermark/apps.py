from django.apps import AppConfig


class WatermarkConfig(AppConfig):
    name = "vetpacs.apps.watermark"
    label = "watermark"
    verbose_name = "Watermark 水印"
