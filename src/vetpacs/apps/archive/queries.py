"""Read-side queries of the archive, always scoped to what the caller may see."""

from __future__ import annotations

from django.db.models import QuerySet

from vetpacs.apps.archive.generation import archive_generation
from vetpacs.apps.archive.models import Instance, Series, Study
from vetpacs.apps.orgs.services import Principal

__all__ = ["archive_generation", "may_see_identity", "visible_instances", "visible_series", "visible_studies"]


def visible_studies(principal: Principal) -> QuerySet[Study]:
    return Study.objects.filter(organisation_id__in=principal.organisation_ids)


def visible_series(principal: Principal) -> QuerySet[Series]:
    return Series.objects.filter(study__organisation_id__in=principal.organisation_ids)


def visible_instances(principal: Principal) -> QuerySet[Instance]:
    return Instance.objects.filter(study__organisation_id__in=principal.organisation_ids)


def may_see_identity(principal: Principal, organisation_id: int) -> bool:
    """Owner identity goes back only to the owning clinic's own users (and its chain)."""
    return organisation_id in principal.organisation_ids
