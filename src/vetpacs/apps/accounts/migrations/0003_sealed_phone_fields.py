from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_loginfailure_loginfailure_at")]

    operations = [
        migrations.AddField(
            model_name="accountprofile",
            name="phone_sealed",
            field=models.BinaryField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="accountprofile",
            name="phone_index",
            field=models.CharField(blank=True, max_length=64, null=True, unique=True),
        ),
        migrations.AddField(
            model_name="invitation",
            name="phone_sealed",
            field=models.BinaryField(blank=True, null=True),
        ),
    ]
