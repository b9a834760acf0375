"""vetpacs sweep: remove blobs left unindexed by an interrupted write."""

from django.core.management.base import BaseCommand

from vetpacs.apps.archive import services


class Command(BaseCommand):
    help = "Delete orphan blobs older than the grace period (--now for all)."

    def add_arguments(self, parser):
        parser.add_argument("--now", action="store_true", help="ignore the grace period")

    def handle(self, *args, **opts):
        n = services.sweep_orphans(older_than_seconds=0 if opts["now"] else None)
        # Resumable uploads abandoned past their expiry (VETPACS_UPLOAD_EXPIRY_HOURS).
        from vetpacs.apps.uploads.services import sweep_expired

        n += sweep_expired()
        if n or opts["verbosity"] >= 1:
            self.stdout.write(f"{n} orphans removed")
