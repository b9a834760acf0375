"""vetpacs verify: re-hash every stored blob and report any mismatch (exit 1 if any)."""

import sys

from django.core.management.base import BaseCommand

from vetpacs.apps.archive import services


class Command(BaseCommand):
    help = "Re-hash every stored blob (every replica) and report missing or corrupt copies."

    def handle(self, *args, **opts):
        checked, problems = services.verify_blobs()
        for p in problems:
            self.stderr.write(f"{p.key}: {p.problem}")
        self.stdout.write(f"{checked} blobs checked, {len(problems)} problems")
        if problems:
            sys.exit(1)
