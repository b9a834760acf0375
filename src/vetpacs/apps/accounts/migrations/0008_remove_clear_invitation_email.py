from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("accounts", "0007_seal_emails")]

    operations = [migrations.RemoveField(model_name="invitation", name="email")]
