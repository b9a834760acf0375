"""vetpacs configure-sso --org NAME --provider-id ID --server-url URL --client-id X --secret S."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from vetpacs.apps.orgs.models import Organisation
from vetpacs.apps.sso import services
from vetpacs.core.errors import VetpacsError


class Command(BaseCommand):
    help = (
        "Configure an organisation's OpenID Connect identity provider (login at /accounts/oidc/<id>/login/)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True)
        parser.add_argument(
            "--provider-id", required=True, help="short name in the login URL, e.g. anxin-sso"
        )
        parser.add_argument("--name", help="the name users see (default: the provider id)")
        parser.add_argument(
            "--server-url", required=True, help="issuer URL (its /.well-known/openid-configuration)"
        )
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--secret", required=True)
        parser.add_argument("--default-role", default="referring_vet")

    def handle(self, *args: Any, **opts: Any) -> None:
        org = Organisation.objects.filter(name=opts["org"]).first()
        if org is None:
            raise CommandError(f"no organisation named {opts['org']!r}")
        try:
            services.configure_oidc(
                organisation=org,
                provider_id=opts["provider_id"],
                name=opts["name"] or opts["provider_id"],
                server_url=opts["server_url"].rstrip("/"),
                client_id=opts["client_id"],
                secret=opts["secret"],
                default_role=opts["default_role"],
            )
        except VetpacsError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(f"sign-in URL: /accounts/oidc/{opts['provider_id']}/login/")
