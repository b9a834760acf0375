"""STOW-RS (PS3.18 10.5): store_instances at root and study level."""

from django.http import HttpRequest, HttpResponse

from vetpacs.dicomweb.responses import error_response


def store_instances(request: HttpRequest, study: str | None = None) -> HttpResponse:
    return error_response(501, "not implemented yet")
