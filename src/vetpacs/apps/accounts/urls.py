"""Pages of the accounts area: members, roles, access review, security events, invitations."""

from django.urls import path

from vetpacs.apps.accounts import views

urlpatterns = [
    path("manage/", views.members, name="accounts_members"),
    path("manage/roles/", views.roles, name="accounts_roles"),
    path("manage/review/", views.review, name="accounts_review"),
    path("manage/security/", views.security, name="accounts_security"),
    path("invite/<str:token>/", views.accept_invitation, name="accounts_invitation"),
    # Before allauth's password/reset/ pages (platform/urls.py includes this table first).
    path("password/reset/sms/", views.reset_password_sms, name="accounts_reset_password_sms"),
    path(
        "password/reset/sms/confirm/",
        views.reset_password_sms_confirm,
        name="accounts_reset_password_sms_confirm",
    ),
]
