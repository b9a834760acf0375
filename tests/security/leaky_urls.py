"""The platform's URLs plus one route that checks nothing: the route walk must catch it."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from vetpacs.platform.urls import urlpatterns as platform_urlpatterns


def leak(request: HttpRequest, study: str) -> HttpResponse:
    return HttpResponse(f"study {study}")


urlpatterns = [path("leak/<str:study>/", leak), *platform_urlpatterns]
