"""Seal the identity providers' client secrets kept in clear until now (R-7.3.4.1c); data only."""

import base64

from django.db import migrations

PURPOSE = "sso.client_secret"
PREFIX = "sealed:"


def seal(apps, schema_editor):
    from vetpacs.apps.identity import services as identity

    for app in apps.get_model("socialaccount", "SocialApp").objects.exclude(secret=""):
        if not app.secret.startswith(PREFIX):
            sealed = identity.seal_platform_value(PURPOSE, app.secret)
            app.secret = PREFIX + base64.urlsafe_b64encode(sealed).decode()
            app.save(update_fields=["secret"])


def unseal(apps, schema_editor):
    from vetpacs.apps.identity import services as identity

    for app in apps.get_model("socialaccount", "SocialApp").objects.filter(secret__startswith=PREFIX):
        app.secret = identity.open_platform_value(PURPOSE, base64.urlsafe_b64decode(app.secret[len(PREFIX) :]))
        app.save(update_fields=["secret"])


class Migration(migrations.Migration):
    dependencies = [("sso", "0001_initial"), ("socialaccount", "0006_alter_socialaccount_extra_data")]
    operations = [migrations.RunPython(seal, unseal)]
