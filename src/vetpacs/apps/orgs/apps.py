from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "vetpacs.apps.orgs"
    label = "orgs"
    verbose_name = "机构 Organisations"
