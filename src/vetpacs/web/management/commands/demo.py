"""vetpacs demo: a demo chain, clinic, user, token and three synthetic studies (idempotent).

The studies are dated relative to the day the demo is first loaded (three days before, the day
before, that day), so the dashboard's "today" panels and the worklist's date filters show them at
once. A later run finds them by their fixed Study Instance UIDs and leaves them as they are: their
dates stay those of the first load.
"""

from __future__ import annotations

import datetime as dt
import functools
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    UltrasoundImageStorage,
    generate_uid,
)

from vetpacs.apps.accounts import services as accounts
from vetpacs.apps.archive.models import Instance, Study
from vetpacs.apps.archive.services import ingest_file
from vetpacs.apps.orgs import services as orgs
from vetpacs.apps.orgs.models import Organisation
from vetpacs.core import clock

CHAIN = "安心宠物连锁 (演示) Demo Chain"
CLINIC = "安心宠物医院 (演示) Demo Clinic"
USERNAME = "demo"
PASSWORD = "demo-Passw0rd!"  # noqa: S105 - the published demo login, printed on purpose
# A second login with the same password: a radiologist, whose dashboard opens on today's reading.
RADIOLOGIST = "radiologist"
MFA_EXEMPTION = "演示账号 demo account"
TOKEN_NAME = "demo"  # noqa: S105 - the label of the token, not the token
URL = "http://127.0.0.1:8000"
CT_SLICES = 20


# The demo studies, oldest first: days before the first load, and the time of day of the exam.
KEYS = ("dx", "ct", "us")
SCHEDULE = {"dx": (3, dt.time(9, 30)), "ct": (1, dt.time(14, 15)), "us": (0, dt.time(11, 0))}
ACCESSIONS = {"dx": "DEMO-DX-1", "ct": "DEMO-CT-2", "us": "DEMO-US-3"}


def demo_uid(*parts: str) -> str:
    """The same UID on every run (so a second run finds the studies already archived)."""
    return generate_uid(entropy_srcs=["vetpacs-demo", *parts])


def study_uid(key: str) -> str:
    return demo_uid(key, "study")


def instance_uids(key: str) -> list[str]:
    """The SOP Instance UIDs of one demo study, known without making its images."""
    if key == "ct":
        return [demo_uid("ct", "instance", str(k)) for k in range(CT_SLICES)]
    return [demo_uid(key, "instance")]


def schedule(now: dt.datetime) -> dict[str, tuple[dt.date, dt.time]]:
    """Each demo study's date and time when loaded at `now`, in the platform's time zone.

    Today's exam is never later than now: loaded before its usual time, it is dated at the last
    quarter hour instead.
    """
    local = timezone.localtime(now)
    quarter = dt.time(local.hour, local.minute - local.minute % 15)
    return {
        key: (local.date() - dt.timedelta(days=days_before), at if days_before or at <= quarter else quarter)
        for key, (days_before, at) in SCHEDULE.items()
    }


class Command(BaseCommand):
    help = "Create the demo clinic, user, API token and studies, then print how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--url", default=URL, help="the address printed for the browser and curl")

    def handle(self, *args, **opts):
        chain = _organisation(CHAIN, Organisation.Kind.CHAIN, None)
        clinic = _organisation(CLINIC, Organisation.Kind.CLINIC, chain)
        user_model = get_user_model()
        user = user_model.objects.filter(username=USERNAME).first()
        if user is None:
            user = orgs.create_user(username=USERNAME, password=PASSWORD, organisation=clinic)
            self.stdout.write(f"created user {USERNAME!r} in {CLINIC}")
        if not user_model.objects.filter(username=RADIOLOGIST).exists():
            orgs.create_user(username=RADIOLOGIST, password=PASSWORD, organisation=clinic, role="radiologist")
            self.stdout.write(f"created user {RADIOLOGIST!r} in {CLINIC}")
        # An administrator with a published password: recorded as an exception to the MFA rule
        # (R-6.2.6.3), shown in the access review, so a demo logs in with the password alone.
        accounts.exempt_from_mfa(user=user, reason=MFA_EXEMPTION)
        token = orgs.issue_token(organisation=clinic, name=TOKEN_NAME, user_id=user.id)
        self._studies(clinic)
        url = opts["url"].rstrip("/")
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "vetpacs 演示 demo",
                    f"  网址 URL:        {url}",
                    f"  用户名 username: {USERNAME:<14}  机构管理员 clinic administrator",
                    f"  用户名 username: {RADIOLOGIST:<14}  影像医生 radiologist (今日阅片 today's reading)",
                    f"  密码 password:   {PASSWORD:<14}  两者相同 the same for both",
                    f"  API token:       {token}",
                    "  (每次运行都会签发新的 token; a fresh token is issued on every run,"
                    " earlier ones stay valid)",
                    "",
                    "  QIDO-RS example:",
                    f"    curl -H 'Authorization: Bearer {token}' \\",
                    f"         -H 'Accept: application/dicom+json' '{url}/dicomweb/studies?PatientName=*'",
                    "",
                ]
            )
        )

    def _studies(self, clinic: Organisation) -> None:
        """Archive the demo studies not there yet; leave those already there, and their dates, alone."""
        planned = schedule(clock.now())
        uids = [study_uid(k) for k in KEYS]
        existing = {s.study_instance_uid: s for s in Study.objects.filter(study_instance_uid__in=uids)}
        present = set(
            Instance.objects.filter(study__study_instance_uid__in=list(existing)).values_list(
                "sop_instance_uid", flat=True
            )
        )
        lines, stored = [], 0
        with tempfile.TemporaryDirectory(prefix="vetpacs-demo-") as tmp:
            for key in KEYS:
                day, at = planned[key]
                study = existing.get(study_uid(key))
                if study is not None and study.study_date is not None:
                    day, at = study.study_date, study.study_time or at  # as on the first load
                new = 0
                if not set(instance_uids(key)) <= present:  # new, or a first load cut short
                    for ds in BUILDERS[key](day, at):
                        if ds.SOPInstanceUID not in present:
                            path = Path(tmp) / f"{ds.SOPInstanceUID}.dcm"
                            ds.save_as(path, enforce_file_format=True)
                            result = ingest_file(path, organisation_id=clinic.id, actor="demo", source="demo")
                            new += result.status != "duplicate"
                stored += new
                images = f"{new} image" + ("s" if new > 1 else "")
                done = f"已存档 {new} 张图像 archived {images}" if new else "已存在，保持原样 left as it is"
                lines.append(f"  {ACCESSIONS[key]}  {day.isoformat()} {at.strftime('%H:%M')}  {done}")
        total = sum(len(instance_uids(k)) for k in KEYS)
        if stored:
            head = (
                "演示检查，日期相对于首次载入之日 demo studies, dated relative to the day of the first load:"
            )
            tail = f"archived {stored} demo images ({total - stored} were already there)"
        else:
            head = (
                "演示检查已存在，保持原样，日期仍为首次载入之日"
                " the demo studies are already archived and left as they are, dated as on the first load:"
            )
            tail = f"the {total} demo images are already archived"
        self.stdout.write("\n".join([head, *lines, tail]))


def _organisation(name: str, kind: str, parent: Organisation | None) -> Organisation:
    org = Organisation.objects.filter(name=name).first()
    if org is None:
        org = orgs.create_organisation(name=name, kind=kind, parent=parent)
    return org


def demo_datasets(when: dict[str, tuple[dt.date, dt.time]] | None = None) -> tuple[Dataset, ...]:
    """All the demo images, dated by `when` (key -> date, time; by default as if loaded now).

    Apart from the dates the content is the same on every run (seeded noise, fixed UIDs).
    """
    when = when or schedule(clock.now())
    return tuple(ds for key in KEYS for ds in BUILDERS[key](*when[key]))


def _dicom_date_time(ds: Dataset, day: dt.date, at: dt.time) -> None:
    ds.StudyDate, ds.StudyTime = day.strftime("%Y%m%d"), at.strftime("%H%M%S")


def _base(
    *, sop_class: str, study: str, series: str, sop: str, modality: str, animal: dict[str, str]
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the animal's and owner's names are Chinese
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.Modality = modality
    # PS3.3 C.7.1.1: a veterinary Patient's Name is Owner^Animal; the owner is the Responsible Person.
    ds.PatientName = f"{animal['owner']}^{animal['name']}"
    ds.PatientID = animal["id"]
    ds.PatientBirthDate = animal["birth"]
    ds.PatientSex = animal["sex"]
    ds.PatientSexNeutered = "ALTERED"
    ds.PatientSpeciesDescription = animal["species"]
    ds.PatientBreedDescription = animal["breed"]
    ds.ResponsiblePerson = animal["owner"]
    ds.ResponsiblePersonRole = "OWNER"
    ds.PatientTelephoneNumbers = animal["phone"]  # the owner's (PS3.3 C.7.1.1); kept encrypted
    ds.PatientWeight = animal["weight"]
    ds.ReferringPhysicianName = "李^医生"
    ds.InstitutionName = "安心宠物医院 (演示)"
    ds.Manufacturer = "vetpacs demo"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    return ds


DOG = {
    "owner": "张伟", "name": "旺财", "id": "DEMO-DOG-0001", "birth": "20200315", "sex": "M",
    "species": "犬 Canine", "breed": "金毛寻回犬 Golden Retriever", "weight": "28.5", "phone": "13800138000",
}  # fmt: skip
CAT = {
    "owner": "王芳", "name": "咪咪", "id": "DEMO-CAT-0002", "birth": "20210720", "sex": "F",
    "species": "猫 Feline", "breed": "中华田园猫 Chinese Domestic", "weight": "4.2", "phone": "13900139000",
}  # fmt: skip


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    return (x - n / 2) / (n / 2), (y - n / 2) / (n / 2)  # -1..1, centre at 0


@functools.cache
def _dx_pixels() -> np.ndarray:
    """A lateral-thorax-like radiograph: body, lungs, heart, spine and ribs, 512x512, 12 of 16 bits."""
    n = 512
    x, y = _grid(n)
    img = np.full((n, n), 300.0, np.float32)  # air around the animal: dark
    body = (x / 0.92) ** 2 + (y / 0.72) ** 2 < 1
    img[body] = 1500
    lungs = ((x + 0.05) / 0.7) ** 2 + ((y + 0.08) / 0.48) ** 2 < 1
    img[lungs] = 700
    heart = ((x + 0.12) / 0.26) ** 2 + ((y - 0.12) / 0.3) ** 2 < 1
    img[heart] = 1900
    for i in range(14):  # vertebrae along the back, with the disc spaces between them dark
        cx = -0.85 + i * 0.125
        vertebra = (np.abs(x - cx) < 0.05) & (np.abs(y + 0.52) < 0.055)
        img[vertebra] = 3300
    for i in range(10):  # ribs: bands curving down and back from the spine towards the sternum
        cx = -0.55 + i * 0.11
        centre = cx + 0.28 * (y + 0.47) ** 2
        rib = (np.abs(x - centre) < 0.018) & (y > -0.47) & (y < 0.5) & body
        img[rib] = np.maximum(img[rib], 2600)
    rng = np.random.default_rng(20261201)
    img += rng.normal(0, 40, img.shape) + 200 * (1 - y)  # quantum noise and a heel-effect gradient
    return np.clip(img, 0, 4095).astype(np.uint16)


def dx_thorax_dog(day: dt.date, at: dt.time) -> list[Dataset]:
    """The radiograph of the dog's thorax, one image."""
    ds = _base(
        sop_class=DigitalXRayImageStorageForPresentation,
        study=demo_uid("dx", "study"),
        series=demo_uid("dx", "series"),
        sop=demo_uid("dx", "instance"),
        modality="DX",
        animal=DOG,
    )
    _dicom_date_time(ds, day, at)
    ds.AccessionNumber, ds.StudyID = ACCESSIONS["dx"], "1"
    ds.StudyDescription = "胸部侧位 Thorax lateral"
    ds.SeriesDescription = "胸部 Thorax"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "RL"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PixelSpacing = [0.3, 0.3]
    ds.ImagerPixelSpacing = [0.3, 0.3]
    _monochrome(ds, _dx_pixels(), bits_stored=12, center=2000, width=3500)
    return [ds]


@functools.cache
def _ct_pixels() -> tuple[np.ndarray, ...]:
    """20 axial slices of a cat's abdomen: body, fat, organs, spine, kidneys, stored as HU + 1024."""
    n = 256
    x, y = _grid(n)
    rng = np.random.default_rng(20261202)
    slices = []
    for k in range(CT_SLICES):
        t = k / (CT_SLICES - 1)
        hu = np.full((n, n), -1000.0, np.float32)
        body = (x / (0.7 + 0.05 * np.sin(t * np.pi))) ** 2 + ((y - 0.05) / 0.55) ** 2 < 1
        hu[body] = -90  # fat
        organs = (x / 0.6) ** 2 + ((y - 0.0) / 0.44) ** 2 < 1
        hu[organs & body] = 45
        spine = (x / 0.09) ** 2 + ((y - 0.38) / 0.08) ** 2 < 1
        hu[spine] = 700
        for side in (-1, 1):  # kidneys appear in the middle slices
            if 0.25 < t < 0.8:
                kidney = ((x - side * 0.28) / 0.12) ** 2 + ((y - 0.2) / 0.09) ** 2 < 1
                hu[kidney] = 150
        gut = ((x + 0.15 * np.cos(t * 6)) / 0.1) ** 2 + ((y + 0.15) / 0.1) ** 2 < 1
        hu[gut & body] = -600  # gas in the bowel
        hu += rng.normal(0, 12, hu.shape)
        slices.append(np.clip(hu + 1024, 0, 4095).astype(np.uint16))
    return tuple(slices)


def ct_abdomen_cat(day: dt.date, at: dt.time) -> list[Dataset]:
    """The cat's abdominal CT: 20 axial slices, in HU via rescale."""
    study, series, frame = demo_uid("ct", "study"), demo_uid("ct", "series"), demo_uid("ct", "frame")
    slices = []
    for k, stored in enumerate(_ct_pixels()):
        ds = _base(
            sop_class=CTImageStorage,
            study=study,
            series=series,
            sop=demo_uid("ct", "instance", str(k)),
            modality="CT",
            animal=CAT,
        )
        _dicom_date_time(ds, day, at)
        ds.AccessionNumber, ds.StudyID = ACCESSIONS["ct"], "2"
        ds.StudyDescription = "腹部 CT Abdomen"
        ds.SeriesDescription = "腹部平扫 Abdomen axial"
        ds.BodyPartExamined = "ABDOMEN"
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = frame
        ds.PositionReferenceIndicator = ""
        ds.SliceThickness = 2.5
        ds.SpacingBetweenSlices = 2.5
        ds.PixelSpacing = [0.5, 0.5]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-64.0, -64.0, -k * 2.5]
        ds.SliceLocation = -k * 2.5
        ds.KVP = 120
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        _monochrome(ds, stored, bits_stored=12, center=40, width=400)
        slices.append(ds)
    return slices


US_ROWS, US_COLUMNS = 480, 640


@functools.cache
def _us_pixels() -> np.ndarray:
    """An ultrasound frame, RGB: a speckled sector with a colour-Doppler patch, 480x640."""
    rows, cols = US_ROWS, US_COLUMNS
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    r = np.hypot(x - cols / 2, y + 40)
    angle = np.arctan2(x - cols / 2, y + 40)
    sector = (r > 60) & (r < 500) & (np.abs(angle) < 0.7)
    rng = np.random.default_rng(20261203)
    speckle = rng.rayleigh(40, (rows, cols)) * np.exp(-r / 700)
    organ = ((x - 320) / 130) ** 2 + ((y - 260) / 80) ** 2 < 1
    speckle[organ] *= 1.8
    cyst = ((x - 300) / 40) ** 2 + ((y - 250) / 30) ** 2 < 1
    speckle[cyst] *= 0.1
    grey = np.where(sector, np.clip(speckle, 0, 255), 0).astype(np.uint8)
    rgb = np.stack([grey, grey, grey], axis=-1)
    doppler = (((x - 380) / 25) ** 2 + ((y - 300) / 18) ** 2 < 1) & sector
    rgb[doppler] = [200, 30, 30]
    rgb[doppler & (x > 380)] = [30, 60, 210]
    return rgb


def us_abdomen_dog(day: dt.date, at: dt.time) -> list[Dataset]:
    """The dog's abdominal ultrasound, one frame."""
    ds = _base(
        sop_class=UltrasoundImageStorage,
        study=demo_uid("us", "study"),
        series=demo_uid("us", "series"),
        sop=demo_uid("us", "instance"),
        modality="US",
        animal=DOG,
    )
    _dicom_date_time(ds, day, at)
    ds.AccessionNumber, ds.StudyID = ACCESSIONS["us"], "3"
    ds.StudyDescription = "腹部超声 Abdomen ultrasound"
    ds.SeriesDescription = "肝脏 Liver"
    ds.BodyPartExamined = "ABDOMEN"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns = US_ROWS, US_COLUMNS
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = _us_pixels().tobytes()
    return [ds]


BUILDERS: dict[str, Callable[[dt.date, dt.time], list[Dataset]]] = {
    "dx": dx_thorax_dog,
    "ct": ct_abdomen_cat,
    "us": us_abdomen_dog,
}


def _monochrome(ds: Dataset, pixels: np.ndarray, *, bits_stored: int, center: int, width: int) -> None:
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter, ds.WindowWidth = center, width
    ds.PixelData = pixels.astype(np.uint16).tobytes()
