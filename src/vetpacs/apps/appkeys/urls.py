"""The application keys page."""

from django.urls import path

from vetpacs.apps.appkeys import views

urlpatterns = [path("", views.app_keys, name="app-keys")]
