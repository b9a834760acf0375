"""Login and logout land in the audit log and start the session's clocks (R-7.3.2.2f, R-7.3.4.2)."""

from __future__ import annotations

import time
from typing import Any

from allauth.account.signals import user_logged_in as allauth_logged_in
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest

from vetpacs.apps.accounts import middleware, services
from vetpacs.apps.accounts.adapter import client_ip


@receiver(user_logged_in, dispatch_uid="vetpacs.accounts.logged_in")
def _logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    services.record_login_success(user, client_ip(request))
    if request is not None and hasattr(request, "session"):
        now = time.time()
        request.session[middleware.LOGIN_AT] = now
        request.session[middleware.SEEN_AT] = now


@receiver(user_logged_out, dispatch_uid="vetpacs.accounts.logged_out")
def _logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:
        services.record_logout(user, client_ip(request))


@receiver(allauth_logged_in, dispatch_uid="vetpacs.accounts.allauth_logged_in")
def _logged_in_interactively(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Every interactive login (password, SMS code, single sign-on) passes through allauth: from
    here on the session must satisfy the MFA policy before it reaches anything else."""
    if request is not None and hasattr(request, "session"):
        request.session[middleware.MFA_POLICY] = True


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="vetpacs.accounts.user_created")
def _user_created(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """UserManager.create_user() saves a hashed password without set_password(), so the
    validators' password_changed() never hears of a first password: remember it here."""
    if created and not raw:
        services.remember_password(instance)


# R-7.3.4.1c: staff e-mail addresses are sealed at rest. Whoever writes auth_user.email (our
# services, allauth's single sign-on sign-up, the Django admin), the address goes into the sealed
# profile column and the clear column is saved empty.
_EMAIL_STASH = "_vetpacs_email"


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="vetpacs.accounts.take_email")
def _take_email(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if not raw and instance.email:
        setattr(instance, _EMAIL_STASH, instance.email)
        instance.email = ""


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="vetpacs.accounts.seal_email")
def _seal_email(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    email = instance.__dict__.pop(_EMAIL_STASH, None)
    if email:
        from vetpacs.apps.accounts.models import AccountProfile

        AccountProfile.objects.update_or_create(user=instance, defaults={"email": email})
