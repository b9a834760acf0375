"""vetpacs create-token --org NAME: print a bearer token for the API and DICOMweb."""

from django.core.management.base import BaseCommand, CommandError

from vetpacs.apps.orgs import services
from vetpacs.apps.orgs.models import Organisation


class Command(BaseCommand):
    help = "Issue an API/DICOMweb bearer token for an organisation (printed once)."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True)
        parser.add_argument("--name", default="cli")

    def handle(self, *args, **opts):
        org = Organisation.objects.filter(name=opts["org"]).first()
        if org is None:
            raise CommandError(f"no organisation named {opts['org']!r}")
        self.stdout.write(services.issue_token(organisation=org, name=opts["name"]))
