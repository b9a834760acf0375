"""What every converted object shares: SOP Common, General Equipment and the Part 10 file meta."""

from __future__ import annotations

import datetime as dt

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from vetpacs.core.ids import new_uid

MANUFACTURER = "vetpacs"
# PS3.3 C.8.6.1: how a Secondary Capture came to be.
CONVERSION_TYPE_WORKSTATION = "WSD"  # workstation: a file collected from the clinic's computer
CONVERSION_TYPE_DIGITIZED_VIDEO = "DV"


def new_dataset(
    *, sop_class_uid: str, transfer_syntax_uid: str = ExplicitVRLittleEndian, now: dt.datetime | None = None
) -> Dataset:
    """An empty dataset with file meta, SOP Common and General Equipment filled in."""
    now = now or dt.datetime.now()
    ds = Dataset()
    sop_instance_uid = new_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.InstanceNumber = 1
    ds.Manufacturer = MANUFACTURER
    return ds
