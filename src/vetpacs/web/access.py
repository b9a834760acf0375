"""Who is looking at a page and what their roles let them do there (R-7.3.2.1a), in one pass per request."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.http import Http404, HttpRequest

from vetpacs.apps.accounts.services import role_permissions
from vetpacs.apps.accounts.workflow import PERMISSIONS
from vetpacs.apps.orgs.models import Membership, Organisation
from vetpacs.apps.orgs.services import Principal, principal_for_user

VIEW_STUDIES = "study.view"


@dataclass(frozen=True)
class Viewer:
    """The signed-in user's principal (only organisations where they may view studies) and permissions."""

    principal: Principal
    user_id: int
    # organisation id -> permission codes; a role held in a chain covers its member clinics
    permissions: dict[int, frozenset[str]] = field(default_factory=dict)
    # organisation id -> role codes held there (a chain's roles reach its member clinics)
    roles: dict[int, frozenset[str]] = field(default_factory=dict)

    def may(self, code: str, organisation_id: int) -> bool:
        return code in self.permissions.get(organisation_id, frozenset())


def viewer_for(request: HttpRequest) -> Viewer:
    """The caller of a page (login_required has run); 404 for a user who may view no studies at all."""
    kept = getattr(request, "_vetpacs_viewer", None)
    if kept is not None:
        return kept
    principal = principal_for_user(request.user)
    if principal is None:
        raise Http404("no organisation")
    perms: dict[int, set[str]] = {}
    roles: dict[int, set[str]] = {}
    if request.user.is_superuser:
        perms = {org: set(PERMISSIONS) for org in principal.organisation_ids}
    else:
        memberships = Membership.objects.filter(user=request.user)
        if hasattr(Membership, "is_active"):
            memberships = memberships.filter(is_active=True)
        for org_id, role in memberships.values_list("organisation_id", "role"):
            perms.setdefault(org_id, set()).update(role_permissions(role, org_id))
            roles.setdefault(org_id, set()).add(role)
        members = Organisation.objects.filter(parent_id__in=list(perms)).values_list("id", "parent_id")
        for member_id, parent_id in members:
            perms.setdefault(member_id, set()).update(perms.get(parent_id, set()))
            roles.setdefault(member_id, set()).update(roles.get(parent_id, set()))
    seeing = frozenset(org for org in principal.organisation_ids if VIEW_STUDIES in perms.get(org, ()))
    viewer = Viewer(
        principal=Principal(organisation_ids=seeing, user_id=principal.user_id, label=principal.label),
        user_id=request.user.pk,
        permissions={org: frozenset(p) for org, p in perms.items()},
        roles={org: frozenset(r) for org, r in roles.items()},
    )
    request._vetpacs_viewer = viewer  # type: ignore[attr-defined] - one pass per request
    return viewer


# The administration pages a header links to, each shown to a user holding its permission somewhere.
ADMIN_PAGES = (
    ("member.view", "/accounts/manage/", "members"),
    ("member.view", "/devices/", "gateways"),
    ("appkey.manage", "/appkeys/", "app_keys"),
    ("audit.view", "/audit/", "audit_log"),
)


def navigation(request: HttpRequest) -> dict[str, object]:
    """Template context: the header of every signed-in page, the administration pages' included.

    The labels in the chosen language, the links to the administration pages this viewer may open
    (the one open marked), and whether the worklist is theirs. A page that worked out its viewer
    already costs no query here; an administration page works it out once (a few small reads)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from vetpacs.web.labels import labels, ui_language

    viewer = getattr(request, "_vetpacs_viewer", None)
    if viewer is None:
        try:
            viewer = viewer_for(request)
        except Http404:  # no organisation at all (a platform administrator): no links to give
            return {}
    held = frozenset().union(*viewer.permissions.values()) if viewer.permissions else frozenset()
    lang = ui_language(request)
    words = labels(lang)
    return {
        "L": words,
        "ui_lang": lang,
        "admin_links": [
            (href, words[key], request.path.startswith(href))
            for code, href, key in ADMIN_PAGES
            if code in held
        ],
        # An auditor or a platform administrator may view no studies: no worklist link for them.
        "may_view_studies": bool(viewer.principal.organisation_ids),
    }
