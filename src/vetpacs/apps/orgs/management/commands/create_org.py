"""vetpacs create-org NAME [--kind clinic|chain|center] [--parent CHAIN]"""

from django.core.management.base import BaseCommand, CommandError

from vetpacs.apps.orgs import services
from vetpacs.apps.orgs.models import Organisation


class Command(BaseCommand):
    help = "Create an organisation (clinic, chain or imaging centre)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--kind", default="clinic", choices=["clinic", "chain", "center"])
        parser.add_argument("--parent", help="the chain this clinic belongs to")

    def handle(self, *args, **opts):
        if Organisation.objects.filter(name=opts["name"]).exists():
            raise CommandError(f"an organisation named {opts['name']!r} already exists")
        parent = None
        if opts["parent"]:
            parent = Organisation.objects.filter(name=opts["parent"], kind="chain").first()
            if parent is None:
                raise CommandError(f"no chain named {opts['parent']!r}")
        org = services.create_organisation(name=opts["name"], kind=opts["kind"], parent=parent)
        self.stdout.write(f"created {org.kind} {org.name!r} (id {org.id})")
