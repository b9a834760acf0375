from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_remove_clear_phones")]

    operations = [
        migrations.AddField(
            model_name="accountprofile",
            name="email_sealed",
            field=models.BinaryField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="accountprofile",
            name="email_index",
            field=models.CharField(blank=True, db_index=True, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="invitation",
            name="email_sealed",
            field=models.BinaryField(blank=True, null=True),
        ),
    ]
