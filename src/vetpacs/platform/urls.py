"""The URL table of the platform."""

from allauth.account import views as allauth_views
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from vetpacs.api.main import api

urlpatterns = [
    # Browsers and phones ask the site's root for its icons, whatever page they are on (the viewers too).
    *(
        path(
            name,
            RedirectView.as_view(
                url=static(f"vetpacs/{name}"), permanent=True, http_method_names=["get", "head"]
            ),
        )
        for name in ("favicon.ico", "apple-touch-icon.png")
    ),
    # allauth's login and logout, at the addresses every page and client already uses.
    path("login/", allauth_views.login, name="login"),
    path("logout/", allauth_views.logout, name="logout"),
    # The admin site signs in through the same page (lockout, MFA), never its own form.
    path("admin/login/", RedirectView.as_view(url="/login/", query_string=True)),
    path("accounts/", include("vetpacs.apps.accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/uploads/", include("vetpacs.api.uploads")),
    path("api/v1/devices/", include("vetpacs.apps.devices.api")),
    path("devices/", include("vetpacs.apps.devices.views")),
    path("api/v1/", api.urls),
    path("dicomweb/", include("vetpacs.dicomweb.urls")),
    path("audit/", include("vetpacs.apps.audit.urls")),
    path("appkeys/", include("vetpacs.apps.appkeys.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("vetpacs.web.urls")),
]
