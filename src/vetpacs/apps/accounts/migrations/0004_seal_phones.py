"""Seal the staff phone numbers kept in clear until now (R-7.3.4.1c); data only."""

from django.db import migrations

PURPOSE = "accounts.phone"


def seal(apps, schema_editor):
    from vetpacs.apps.identity import services as identity

    for profile in apps.get_model("accounts", "AccountProfile").objects.exclude(phone__isnull=True).exclude(phone=""):
        profile.phone_sealed = identity.seal_platform_value(PURPOSE, profile.phone)
        profile.phone_index = identity.platform_blind_index(PURPOSE, profile.phone)
        profile.save(update_fields=["phone_sealed", "phone_index"])
    for invitation in apps.get_model("accounts", "Invitation").objects.exclude(phone=""):
        invitation.phone_sealed = identity.seal_platform_value(PURPOSE, invitation.phone)
        invitation.save(update_fields=["phone_sealed"])


def unseal(apps, schema_editor):
    from vetpacs.apps.identity import services as identity

    for model in ("AccountProfile", "Invitation"):
        for row in apps.get_model("accounts", model).objects.exclude(phone_sealed__isnull=True):
            row.phone = identity.open_platform_value(PURPOSE, row.phone_sealed)
            row.save(update_fields=["phone"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_sealed_phone_fields")]
    operations = [migrations.RunPython(seal, unseal)]
