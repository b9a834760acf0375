from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_seal_phones")]

    operations = [
        migrations.RemoveField(model_name="accountprofile", name="phone"),
        migrations.RemoveField(model_name="invitation", name="phone"),
    ]
