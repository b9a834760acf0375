"""Per-clinic data keys, owners and the original identity attributes of each instance."""

from django.db import models


class DataKey(models.Model):
    """A clinic's data key, wrapped (AES-256-GCM) by the master key. Destroyed when data is purged."""

    organisation_id = models.BigIntegerField(db_index=True)
    wrapped_key = models.BinaryField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)


class Owner(models.Model):
    """The animal's owner (DICOM Responsible Person). Personal fields are ciphertext only."""

    organisation_id = models.BigIntegerField(db_index=True)
    data_key = models.ForeignKey(DataKey, on_delete=models.PROTECT)
    pseudonym = models.CharField(max_length=32, unique=True)
    name_enc = models.BinaryField()
    phone_enc = models.BinaryField()
    id_card_enc = models.BinaryField()
    address_enc = models.BinaryField()
    # Keyed blind indexes (HMAC-SHA256) give exact-match search without storing the clear value.
    name_bidx = models.CharField(max_length=64, db_index=True, blank=True)
    phone_bidx = models.CharField(max_length=64, db_index=True, blank=True)
    id_card_bidx = models.CharField(max_length=64, db_index=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["organisation_id", "name_bidx", "phone_bidx"])]


class InstanceIdentity(models.Model):
    """The original owner attributes removed from one stored instance (encrypted DICOM JSON)."""

    organisation_id = models.BigIntegerField(db_index=True)
    study_instance_uid = models.CharField(max_length=64, db_index=True)
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    owner = models.ForeignKey(Owner, null=True, on_delete=models.SET_NULL)
    data_key = models.ForeignKey(DataKey, on_delete=models.PROTECT)
    originals_enc = models.BinaryField()
