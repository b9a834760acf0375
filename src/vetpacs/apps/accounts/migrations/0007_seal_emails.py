"""Seal the staff e-mail addresses kept in clear until now (R-7.3.4.1c): auth_user.email moves into
the sealed profile column and is emptied; invitations' addresses too. Data only."""

from django.conf import settings
from django.db import migrations

PURPOSE = "accounts.email"


def seal(apps, schema_editor):
    from vetpacs.apps.identity import services as identity

    user_model = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    profiles = apps.get_model("accounts", "AccountProfile")
    for user in user_model.objects.exclude(email=""):
        profile, _ = profiles.objects.get_or_create(user_id=user.pk)
        profile.email_sealed = identity.seal_platform_value(PURPOSE, user.email)
        profile.email_index = identity.platform_blind_index(PURPOSE, user.email)
        profile.save(update_fields=["email_sealed", "email_index"])
        user_model.objects.filter(pk=user.pk).update(email="")
    for invitation in apps.get_model("accounts", "Invitation").objects.exclude(email=""):
        invitation.email_sealed = identity.seal_platform_value(PURPOSE, invitation.email)
        invitation.save(update_fields=["email_sealed"])


def unseal(apps, schema_editor):
    from vetpacs.apps.identity import services as identity

    user_model = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    for profile in apps.get_model("accounts", "AccountProfile").objects.exclude(email_sealed__isnull=True):
        email = identity.open_platform_value(PURPOSE, profile.email_sealed)
        user_model.objects.filter(pk=profile.user_id).update(email=email)
    for invitation in apps.get_model("accounts", "Invitation").objects.exclude(email_sealed__isnull=True):
        invitation.email = identity.open_platform_value(PURPOSE, invitation.email_sealed)
        invitation.save(update_fields=["email"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0006_sealed_email_fields"), migrations.swappable_dependency(settings.AUTH_USER_MODEL)]
    operations = [migrations.RunPython(seal, unseal)]
