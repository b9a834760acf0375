"""The URL table of the platform."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from vetpacs.api.main import api
from vetpacs.web import views as web

urlpatterns = [
    path("", web.studies, name="studies"),
    path("login/", auth_views.LoginView.as_view(template_name="web/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/uploads/", include("vetpacs.api.uploads")),
    path("api/v1/devices/", include("vetpacs.apps.devices.api")),
    path("devices/", include("vetpacs.apps.devices.views")),
    path("api/v1/", api.urls),
    path("dicomweb/", include("vetpacs.dicomweb.urls")),
    path("viewer/", include("vetpacs.web.viewer")),
]
