"""Fill the animal-name search key for patients indexed before it existed (data migration)."""

from django.db import migrations


def fill(apps, schema_editor):
    from vetpacs.apps.archive.search_keys import animal_name_key

    Patient = apps.get_model("archive", "Patient")
    batch = []
    for patient in (
        Patient.objects.filter(animal_name_key="").exclude(animal_name="").iterator(chunk_size=1000)
    ):
        patient.animal_name_key = animal_name_key(patient.animal_name)
        batch.append(patient)
        if len(batch) >= 1000:
            Patient.objects.bulk_update(batch, ["animal_name_key"])
            batch = []
    if batch:
        Patient.objects.bulk_update(batch, ["animal_name_key"])


class Migration(migrations.Migration):
    dependencies = [("archive", "0004_patient_animal_name_key")]
    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
