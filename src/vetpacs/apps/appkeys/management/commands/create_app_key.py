"""vetpacs create-app-key --org NAME --name LABEL --scopes S,...: an application key, secret shown once."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from vetpacs.apps.appkeys import services, workflow
from vetpacs.apps.orgs.models import Organisation
from vetpacs.core.errors import VetpacsError


class Command(BaseCommand):
    help = "Issue an application key for signed requests (docs/api-signing.md); the secret is printed once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", required=True, help=f"comma-separated: {','.join(workflow.SCOPES)}")

    def handle(self, *args: Any, **opts: Any) -> None:
        org = Organisation.objects.filter(name=opts["org"]).first()
        if org is None:
            raise CommandError(f"no organisation named {opts['org']!r}")
        scopes = [s.strip() for s in opts["scopes"].split(",") if s.strip()]
        try:
            key, secret = services.issue_key(organisation=org, name=opts["name"], scopes=scopes)
        except VetpacsError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(f"key id: {key.key_id}\nsecret: {secret}\n(the secret is not shown again)")
