from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _schedule_purge(sender: AppConfig, **kwargs: Any) -> None:
    # R-7.3.2.2f: every installation (make run, an upgrade) migrates, so a daily purge is always booked.
    from vetpacs.apps.audit import tasks

    if kwargs.get("using", "default") != "default" or not tasks.purge_expired.get_backend().supports_defer:
        return  # a replica, or a task backend that cannot hold a task for later (tests' immediate one)
    tasks.schedule_purge()


class AuditConfig(AppConfig):
    name = "vetpacs.apps.audit"
    label = "audit"
    verbose_name = "审计 Audit"

    def ready(self) -> None:
        post_migrate.connect(_schedule_purge, sender=self, dispatch_uid="vetpacs.audit.schedule_purge")
