"""The index's change counter: bumped by every writer in its transaction, read by caches of the index."""

from __future__ import annotations

from django.db.models import F

from vetpacs.apps.archive.models import ArchiveGeneration


def bump_generation() -> None:
    """Call inside every transaction that changes the index (studies, series, instances, identity)."""
    if not ArchiveGeneration.objects.filter(id=1).update(value=F("value") + 1):
        ArchiveGeneration.objects.get_or_create(id=1, defaults={"value": 1})


def archive_generation() -> int:
    """The current value; 0 before the first change."""
    return ArchiveGeneration.objects.filter(id=1).values_list("value", flat=True).first() or 0
