"""The index of what is archived. Names follow the DICOM keywords."""

from __future__ import annotations

from django.db import models

from vetpacs.apps.orgs.models import Organisation


class Patient(models.Model):
    """The animal. Owner identity lives in the identity store; only its pseudonym is here."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="patients")
    patient_id = models.CharField(max_length=64)
    patient_name = models.CharField(max_length=200, blank=True)  # the stored (pseudonymised) PN
    animal_name = models.CharField(max_length=200, blank=True)  # the pet's name (given name)
    # Pinyin and initials of animal_name ("wangcai|wc"), for the worklist's name filter (R-6.2.4d).
    animal_name_key = models.CharField(max_length=200, blank=True, db_index=True)
    species_description = models.CharField(max_length=64, blank=True)
    species_code = models.CharField(max_length=64, blank=True)
    breed_description = models.CharField(max_length=64, blank=True)
    breed_code = models.CharField(max_length=64, blank=True)
    sex = models.CharField(max_length=16, blank=True)
    sex_neutered = models.CharField(max_length=16, blank=True)  # ALTERED / UNALTERED
    birth_date = models.DateField(null=True, blank=True)
    microchip = models.CharField(max_length=64, blank=True)
    weight_kg = models.FloatField(null=True, blank=True)
    owner_pseudonym = models.CharField(max_length=32, blank=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organisation", "patient_id"], name="patient_id_per_org")
        ]


class Study(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="studies")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    study_instance_uid = models.CharField(max_length=64, unique=True)
    study_date = models.DateField(null=True, blank=True, db_index=True)
    study_time = models.TimeField(null=True, blank=True)
    accession_number = models.CharField(max_length=64, blank=True, db_index=True)
    study_id = models.CharField(max_length=16, blank=True)
    study_description = models.CharField(max_length=200, blank=True)
    referring_physician_name = models.CharField(max_length=200, blank=True)
    # Denormalised from the patient for QIDO matching without a join.
    patient_name = models.CharField(max_length=200, blank=True, db_index=True)
    # DICOM Patient ID (0010,0020); `patient_id` is the foreign key's column.
    dicom_patient_id = models.CharField(max_length=64, blank=True, db_index=True)
    patient_birth_date = models.DateField(null=True, blank=True)
    patient_sex = models.CharField(max_length=16, blank=True)
    species_description = models.CharField(max_length=64, blank=True, db_index=True)
    breed_description = models.CharField(max_length=64, blank=True)
    responsible_person = models.CharField(max_length=200, blank=True, db_index=True)
    modalities_in_study = models.CharField(max_length=200, blank=True)  # backslash-separated
    number_of_series = models.PositiveIntegerField(default=0)
    number_of_instances = models.PositiveIntegerField(default=0)
    dicom_json = models.JSONField(default=dict)  # patient + study module attributes
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # The worklist's order (newest first) in one index: a page is read in order and stops at its
        # end instead of sorting every study of the clinic.
        indexes = [
            models.Index(
                fields=["organisation", "-study_date", "-study_time", "-id"], name="study_worklist_order"
            )
        ]


class Series(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField(max_length=64, unique=True)
    modality = models.CharField(max_length=16, blank=True, db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=200, blank=True)
    series_date = models.DateField(null=True, blank=True)
    series_time = models.TimeField(null=True, blank=True)
    body_part_examined = models.CharField(max_length=64, blank=True)
    performed_procedure_step_start_date = models.DateField(null=True, blank=True)
    performed_procedure_step_start_time = models.TimeField(null=True, blank=True)
    number_of_instances = models.PositiveIntegerField(default=0)
    dicom_json = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)


class Blob(models.Model):
    """Bytes in the blob store: where, how big, their SHA-256 and transfer syntax."""

    key = models.CharField(max_length=80, unique=True)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    transfer_syntax_uid = models.CharField(max_length=64, blank=True)
    locations = models.JSONField(default=list)  # names of the backends holding a copy
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)


class Instance(models.Model):
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="instances")
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    sop_class_uid = models.CharField(max_length=64, db_index=True)
    instance_number = models.IntegerField(null=True, blank=True)
    rows = models.IntegerField(null=True, blank=True)
    columns = models.IntegerField(null=True, blank=True)
    bits_allocated = models.IntegerField(null=True, blank=True)
    number_of_frames = models.IntegerField(null=True, blank=True)
    blob = models.OneToOneField(Blob, on_delete=models.PROTECT, related_name="instance")
    transfer_syntax_uid = models.CharField(max_length=64)  # as stored
    original_transfer_syntax_uid = models.CharField(max_length=64)  # as received
    original_sha256 = models.CharField(max_length=64, db_index=True)  # of the received bytes
    original_size = models.BigIntegerField()
    metadata = models.JSONField(default=dict)  # DICOM JSON with bulk-data placeholders
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)


class InstanceVersion(models.Model):
    """A superseded copy kept when VETPACS_KEEP_VERSIONS is on."""

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    blob = models.OneToOneField(Blob, on_delete=models.PROTECT, related_name="instance_version")
    original_sha256 = models.CharField(max_length=64)
    replaced_at = models.DateTimeField(auto_now_add=True)


class PendingBlob(models.Model):
    """Intent to write a blob, committed before the bytes go out and removed when indexed.

    After a crash, rows older than the grace period name blobs nobody indexes: the sweep deletes
    them, on any backend, without listing the store.
    """

    key = models.CharField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)


class ArchiveGeneration(models.Model):
    """A number bumped in the same transaction as every change to the index.

    Readers that cache what they built from the index (QIDO-RS results) compare it on each request,
    so a cached answer is never older than the last committed change.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    value = models.BigIntegerField(default=0)
