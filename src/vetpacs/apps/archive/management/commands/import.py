"""vetpacs import PATH... --org NAME: archive DICOM files and folders, with a progress bar."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from vetpacs.apps.archive import services
from vetpacs.apps.orgs.models import Organisation
from vetpacs.core.errors import VetpacsError


def _files(paths: list[str]):
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            yield p
        else:
            raise CommandError(f"{p}: no such file or folder")


class Command(BaseCommand):
    help = "Archive DICOM files or folders into an organisation."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--org", help="the owning organisation (default: the only clinic)")
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args, **opts):
        org = _organisation(opts["org"])
        files = list(_files(opts["paths"]))
        counts = {"stored": 0, "duplicate": 0, "replaced": 0, "failed": 0}
        failures: list[str] = []
        bar = tqdm(files, unit="file", disable=opts["quiet"] or not files, file=sys.stderr)
        for path in bar:
            try:
                result = services.ingest_file(
                    path, organisation_id=org.id, actor="cli:import", source="import"
                )
                counts[result.status] += 1
            except VetpacsError as exc:
                counts["failed"] += 1
                failures.append(f"{path}: {exc.detail}")
        for line in failures:
            self.stderr.write(f"refused {line}")
        self.stdout.write(
            f"{counts['stored']} stored, {counts['duplicate']} already stored, "
            f"{counts['replaced']} replaced, {counts['failed']} refused"
        )
        if counts["failed"]:
            sys.exit(1)


def _organisation(name: str | None) -> Organisation:
    if name:
        org = Organisation.objects.filter(name=name).first()
        if org is None:
            raise CommandError(f"no organisation named {name!r}")
        return org
    clinics = list(Organisation.objects.filter(kind="clinic")[:2])
    if len(clinics) != 1:
        raise CommandError("say which organisation with --org NAME")
    return clinics[0]
