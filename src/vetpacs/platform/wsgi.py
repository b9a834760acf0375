"""WSGI entry point (granian --interface wsgi).

DICOMweb calls that carry a bearer token (viewers, exporters, PACS and modalities: most of the
platform's requests) go through a handler without the browser-session middleware: sessions, CSRF,
messages, language negotiation, login and account policies all act on a logged-in browser user,
whom such a call never has (vetpacs.apps.orgs.auth takes the token and nothing else). They were a
third of a cached WADO-RS retrieval's CPU. Every other middleware, security headers included, runs
for them as for any request; a request without a bearer token gets the full stack.
"""

import os

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetpacs.platform.settings")
application_for_browsers = get_wsgi_application()

# Middleware that serves a browser session only. A middleware not named here runs for bearer calls too.
SESSION_ONLY_MIDDLEWARE = frozenset(
    {
        "django.contrib.sessions.middleware.SessionMiddleware",
        "vetpacs.platform.locale.ChosenLanguageMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "allauth.account.middleware.AccountMiddleware",
        "vetpacs.apps.accounts.middleware.SessionTimeoutMiddleware",
        "vetpacs.apps.accounts.middleware.AccountPolicyMiddleware",
    }
)
# DICOMweb, and the gateways' device endpoint (3000 gateways beating every 15 s, R-8.3a).
BEARER_PREFIXES = ("/dicomweb/", "/api/v1/devices/")


def _handler_without(skipped: frozenset[str]) -> WSGIHandler:
    # WSGIHandler loads settings.MIDDLEWARE when it is made: give it the shorter list for that moment
    # (at import, before any request is served) and put the setting back.
    full = settings.MIDDLEWARE
    settings.MIDDLEWARE = [m for m in full if m not in skipped]
    try:
        return WSGIHandler()
    finally:
        settings.MIDDLEWARE = full


application_for_tokens = _handler_without(SESSION_ONLY_MIDDLEWARE)

# Import every URL module (and the views, the API and the schemas they load) now, as each worker
# starts, rather than in the first request it serves: that import is about half a second of CPU.
get_resolver().url_patterns  # noqa: B018 - evaluated for its import


def application(environ, start_response):  # noqa: ANN001, ANN201 - the WSGI callable
    if (
        environ.get("PATH_INFO", "").startswith(BEARER_PREFIXES)
        and environ.get("HTTP_AUTHORIZATION", "")[:7].lower() == "bearer "
    ):
        return application_for_tokens(environ, start_response)
    return application_for_browsers(environ, start_response)
