"""Pages of the accounts area: members, roles, access review, security events, invitations."""

from django.urls import path

from vetpacs.apps.accounts import views

urlpatterns = [
    path("manage/", views.members, name="accounts_members"),
    path("manage/roles/", views.roles, name="accounts_roles"),
    path("manage/review/", views.review, name="accounts_review"),
    path("manage/security/", views.security, name="accounts_security"),
    path("invite/<str:token>/", views.accept_invitation, name="accounts_invitation"),
]
