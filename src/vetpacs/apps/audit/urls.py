"""The auditor's page."""

from django.urls import path

from vetpacs.apps.audit import views

urlpatterns = [path("", views.audit_log, name="audit-log")]
