"""vetpacs create-user USERNAME --org NAME [--password P] [--role ROLE]"""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from vetpacs.apps.orgs import services
from vetpacs.apps.orgs.models import Membership, Organisation


class Command(BaseCommand):
    help = "Create a user in an organisation; prints the password when one is generated."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--org", required=True)
        parser.add_argument("--password")
        parser.add_argument("--role", default="org_admin")
        parser.add_argument("--superuser", action="store_true")

    def handle(self, *args, **opts):
        org = Organisation.objects.filter(name=opts["org"]).first()
        if org is None:
            raise CommandError(f"no organisation named {opts['org']!r}")
        User = get_user_model()
        if User.objects.filter(username=opts["username"]).exists():
            raise CommandError(f"user {opts['username']!r} already exists")
        password = opts["password"] or secrets.token_urlsafe(12)
        user = services.create_user(
            username=opts["username"],
            password=password,
            organisation=org,
            role=opts["role"],
            superuser=opts["superuser"],
        )
        Membership.objects.get(user=user, organisation=org)
        self.stdout.write(f"created user {user.username!r} in {org.name!r}")
        if not opts["password"]:
            self.stdout.write(f"password: {password}")
