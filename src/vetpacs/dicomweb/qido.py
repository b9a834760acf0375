"""QIDO-RS (PS3.18 10.6): search_for_studies, search_for_series, search_for_instances."""

from django.http import HttpRequest, HttpResponse

from vetpacs.dicomweb.responses import error_response


def search_for_studies(request: HttpRequest) -> HttpResponse:
    return error_response(501, "not implemented yet")


def search_for_series(request: HttpRequest, study: str | None = None) -> HttpResponse:
    return error_response(501, "not implemented yet")


def search_for_instances(
    request: HttpRequest, study: str | None = None, series: str | None = None
) -> HttpResponse:
    return error_response(501, "not implemented yet")
