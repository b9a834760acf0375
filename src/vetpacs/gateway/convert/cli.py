"""`vetpacs-gateway convert FILE --patient-id ... --out DIR`: make DICOM of a still, PDF or clip by hand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vetpacs.gateway.convert import ConversionError, convert_file, read_sidecar

_FLAGS = (
    ("--patient-id", "patient_id", "患宠编号 Patient ID"),
    ("--patient-name", "patient_name", "Owner^Pet, e.g. 张^咪咪"),
    ("--species", "species", "物种 species, e.g. Canine"),
    ("--breed", "breed", "品种 breed"),
    ("--owner", "owner", "主人 owner (Responsible Person)"),
    ("--sex", "patient_sex", "M, F or O"),
    ("--accession-number", "accession_number", "检查号 accession number"),
    ("--study-uid", "study_instance_uid", "add to an existing study"),
    ("--series-description", "series_description", "series description"),
    ("--referring-vet", "referring_physician_name", "申请医生 requesting vet"),
)


def add_convert(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("convert", help="转换 / convert JPEG, PNG, PDF or MP4 files to DICOM")
    p.add_argument("files", nargs="+", type=Path, help="the files to convert")
    for flag, dest, help_text in _FLAGS:
        p.add_argument(flag, dest=dest, help=help_text)
    p.add_argument("--out", type=Path, required=True, help="folder for the .dcm files")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    given = {dest: getattr(args, dest) for _, dest, _ in _FLAGS if getattr(args, dest)}
    failed = 0
    for path in args.files:
        try:
            sidecar = {**(read_sidecar(path) or {}), **given}  # the command line wins over a sidecar
            for ds in convert_file(path, sidecar=sidecar):
                target = args.out / f"{ds.SOPInstanceUID}.dcm"
                ds.save_as(target, enforce_file_format=True)
                print(f"{path} -> {target} ({ds.SOPClassUID.name})")
        except (ConversionError, OSError) as exc:
            print(f"vetpacs-gateway convert: {path}: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0
