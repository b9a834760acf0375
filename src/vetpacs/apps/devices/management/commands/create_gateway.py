"""`vetpacs create-gateway --org NAME [--name LABEL]`: register a gateway, print its one-time code."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from vetpacs.apps.devices import services
from vetpacs.apps.orgs.models import Organisation
from vetpacs.core.errors import VetpacsError


class Command(BaseCommand):
    help = "Register a clinic gateway and print its one-time enrolment code"

    def add_arguments(self, parser):  # noqa: ANN001, ANN201
        parser.add_argument("--org", required=True, help="organisation name")
        parser.add_argument(
            "--name", default="gateway", help="the gateway's name (unique in the organisation)"
        )
        parser.add_argument("--ttl-hours", type=int, default=None, help="how long the code stays valid")

    def handle(self, *args, **opts):  # noqa: ANN002, ANN003, ANN201
        org = Organisation.objects.filter(name=opts["org"]).first()
        if org is None:
            raise CommandError(f"no organisation named {opts['org']!r}")
        try:
            gateway, code = services.register_gateway(
                organisation_id=org.id,
                name=opts["name"],
                actor=services.Actor(user_id=None, label="cli"),
                ttl_hours=opts["ttl_hours"],
            )
        except VetpacsError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"gateway {gateway.name} ({gateway.key_id}) registered for {org.name}")
        self.stdout.write(f"enrolment code (shown once): {code}")
        self.stdout.write(f"at the clinic: vetpacs-gateway enroll --url URL --code {code} --config-dir DIR")
