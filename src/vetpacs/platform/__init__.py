"""The platform process: settings, URL table, ASGI/WSGI entry points."""
