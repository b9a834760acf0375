"""ASGI entry point (granian --interface asginl: Django has no ASGI lifespan)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetpacs.platform.settings")
application = get_asgi_application()
