"""Every URL pattern of the platform, walked: anonymous callers are refused, another clinic sees nothing.

R-7.3.4.1c/d and issue 3 item 8. The walk takes the patterns from Django's resolver, so a route added
anywhere is walked too: one whose path parameter has no value here, or that answers an anonymous
caller or another clinic with data, fails this test until it is checked (or deliberately public and
listed in PUBLIC with the reason).

For each route and method (GET, POST, DELETE):
- anonymous: 401, or a redirect to a login page, or 405 (the method does not exist there);
- another clinic's user (session) and another clinic's bearer token, with path parameters naming
  the first clinic's objects: 404 or 403 (or 405, or a redirect to a login page); and on routes that
  name no object (lists, searches), no identifier of the first clinic's objects in the answer.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

from tests.builders import dicom as build

pytestmark = pytest.mark.django_db

PASSWORD = "Vp!x7Kq#2wLz-walk"  # noqa: S105
METHODS = ("GET", "POST", "DELETE")

# Deliberately public routes (a regular expression over the route) and why each may answer anyone.
PUBLIC: dict[str, str] = {
    r"^login/$": "the login page",
    r"^logout/$": "logging out needs no account (allauth shows a confirmation or redirects)",
    r"^accounts/login/": "allauth login, login by SMS/e-mail code and its confirmation",
    r"^accounts/logout/$": "allauth logout",
    r"^accounts/signup/$": "signup page; the adapter closes signup (accounts are created by admins)",
    r"^accounts/inactive/$": "the 'account inactive' notice shown after a refused login",
    r"^accounts/password/reset/": "password reset by code: the code, not a session, is the proof",
    r"^accounts/confirm-email/": "e-mail confirmation links: the key in the link is the proof",
    r"^accounts/invite/": "invitation links: the one-time token in the link is the proof",
    r"^accounts/2fa/authenticate/$": "second step of a login in progress (redirects without one)",
    r"^accounts/reauthenticate/": "reauthentication step of a login in progress",
    r"^accounts/phone/verify/$": "phone verification step of a login or signup in progress",
    r"^i18n/setlang/$": "switching the interface language",
    r"^api/v1/devices/enrol$": "a gateway enrols with its one-time enrolment code (the code is the proof)",
    r"^api/v1/(openapi\.json|docs)$": "the API description (OpenAPI): no data, same for everyone",
    r"^viewer/": "OHIF's static application files; every image comes through authenticated DICOMweb",
    r"^m/": "the light viewer's static files; images come through authenticated DICOMweb",
    r"^admin/login/$": "Django admin's login page",
    r"^admin/logout/$": "Django admin's logout (redirects; ends nothing for an anonymous caller)",
    r"^api/v1/$": "Django Ninja's API root: answers 404 to everyone, no data",
    r"^static/": "static files",
    r"^(favicon\.ico|apple-touch-icon\.png)$": "the site's icons: redirects to static files, no data",
    r"^health": "health check for load balancers",
    r"^accounts/oidc/": "single sign-on start and callback: the provider's signed answer is the proof",
    r"^accounts/3rdparty/(login/(cancelled|error)|signup)/$": "single sign-on notices and its sign-up step",
    r"^accounts/social/": "allauth's old addresses: permanent redirects to accounts/3rdparty/ (walked)",
}


@dataclass(frozen=True)
class Route:
    route: str  # the pattern with its converters, e.g. dicomweb/studies/<str:study>
    params: tuple[str, ...]

    def url(self, values: dict[str, str]) -> str:
        def fill(name: str) -> str:
            if name not in values:
                pytest.fail(
                    f"route {self.route!r} has a path parameter {name!r} this walk cannot fill: add it"
                )
            return values[name]

        url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: fill(m.group(1)), self.route)
        url = re.sub(r"\(\?P<([^>]+)>[^)]*\)", lambda m: fill(m.group(1)), url)
        return "/" + url.replace("^", "").replace("$", "")

    @property
    def public_reason(self) -> str | None:
        for pattern, reason in PUBLIC.items():
            if re.search(pattern, self.route.replace("^", "")):
                return reason
        return None


def all_routes() -> list[Route]:
    routes: dict[str, Route] = {}

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            text = prefix + _pattern_text(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, text)
            elif isinstance(p, URLPattern):
                params = tuple(re.findall(r"<(?:[^:>]+:)?([^>]+)>", text))
                routes.setdefault(text, Route(text, params))

    walk(get_resolver().url_patterns, "")
    return sorted(routes.values(), key=lambda r: r.route)


def _pattern_text(pattern) -> str:
    if isinstance(pattern, RoutePattern):
        return str(pattern)
    if isinstance(pattern, RegexPattern):
        return str(pattern.regex.pattern)
    return str(pattern)


@dataclass
class World:
    values: dict[str, str]
    secrets: list[str]  # identifiers of the first clinic's objects that another clinic must never see
    anonymous: Client
    other_user: Client
    other_token: Client


@pytest.fixture
def world(clinic, other_clinic, ingest, other_token) -> World:
    from vetpacs.apps.appkeys import services as appkeys
    from vetpacs.apps.orgs.services import create_user
    from vetpacs.apps.uploads import services as uploads

    ds = build.study(1)[0]
    ingest(ds)
    upload = uploads.create_upload(
        caller=uploads.Caller(organisation_id=clinic.id, actor="test"), length=10, metadata={}
    )
    key, _ = appkeys.issue_key(organisation=clinic, name="HIS of the first clinic", scopes=["api.read"])
    values = {
        "study": ds.StudyInstanceUID,
        "study_instance_uid": ds.StudyInstanceUID,
        "series": ds.SeriesInstanceUID,
        "series_instance_uid": ds.SeriesInstanceUID,
        "instance": ds.SOPInstanceUID,
        "sop_instance_uid": ds.SOPInstanceUID,
        "frames": "1",
        "tag": "7FE00010",
        "upload_id": str(upload.id),
        "key_id": key.key_id,
        "subpath": "index.html",
        # allauth's own per-user objects (WebAuthn keys) and one-time links: ids of nothing
        "pk": "999999",
        "key": "not-a-real-key",
        "token": "not-a-real-token",
        # Django admin's generic routes
        "object_id": "1",
        "id": "1",
        "app_label": "orgs",
        "content_type_id": "1",
        "url": "nothing",
    }
    secrets = [ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, str(upload.id), key.key_id]
    try:
        from vetpacs.apps.devices import services as devices

        gateway, _ = devices.register_gateway(
            organisation_id=clinic.id, name="first-clinic-gateway", actor=devices.Actor(None, "test")
        )
        values["gateway_id"] = str(gateway.id)
        secrets += [gateway.key_id, "first-clinic-gateway"]
    except ImportError:
        pass
    other_user = Client()
    other_user.force_login(
        create_user(username=f"walker-{uuid.uuid4().hex[:6]}", password=PASSWORD, organisation=other_clinic)
    )
    return World(
        values=values,
        secrets=secrets,
        anonymous=Client(),
        other_user=other_user,
        other_token=Client(HTTP_AUTHORIZATION=f"Bearer {other_token}"),
    )


def _call(client: Client, method: str, url: str):
    # Tus-Resumable: the tus routes check the protocol version before anything else.
    return client.generic(
        method, url, data=b"{}", content_type="application/json", follow=False, HTTP_TUS_RESUMABLE="1.0.0"
    )


def _to_login(resp) -> bool:
    return resp.status_code in (301, 302, 303) and "login" in resp.get("Location", "")


def _body(resp) -> str:
    if getattr(resp, "streaming", False):
        return b"".join(resp.streaming_content).decode(errors="replace")
    return resp.content.decode(errors="replace")


def test_the_walk_sees_the_platforms_surfaces():
    routes = {r.route for r in all_routes()}
    for expected in ("dicomweb/studies", "api/v1/studies", "api/v1/uploads/", "audit/", "api/v1/appkeys"):
        assert expected in routes, f"{expected} not found: the walk is not seeing every route"


def anonymous_holes(world: World) -> list[str]:
    holes = []
    for route in all_routes():
        if route.public_reason:
            continue
        url = route.url(world.values)
        for method in METHODS:
            resp = _call(world.anonymous, method, url)
            if resp.status_code in (401, 405) or _to_login(resp):
                continue
            holes.append(f"{method} {url} -> {resp.status_code}")
    return holes


def other_clinic_holes(world: World) -> list[str]:
    holes = []
    for route in all_routes():
        if route.public_reason:
            continue
        url = route.url(world.values)
        names_an_object = any(p in world.values for p in route.params) and route.params != ("subpath",)
        for who, client in (
            ("other clinic's user", world.other_user),
            ("other clinic's token", world.other_token),
        ):
            for method in METHODS:
                resp = _call(client, method, url)
                status = resp.status_code
                if status in (401, 403, 404, 405) or _to_login(resp):
                    continue
                if names_an_object and 200 <= status < 300:
                    holes.append(f"{who}: {method} {url} -> {status} for the first clinic's object")
                    continue
                leaked = [secret for secret in world.secrets if secret in _body(resp)]
                if leaked:
                    holes.append(f"{who}: {method} {url} -> {status} shows {leaked}")
    return holes


@pytest.mark.requirement("R-7.3.4.4c")
def test_anonymous_callers_are_refused_everywhere_but_the_public_routes(world):
    holes = anonymous_holes(world)
    assert not holes, "anonymous callers were not refused:\n" + "\n".join(holes)


@pytest.mark.requirement("R-7.3.4.4c")
@pytest.mark.requirement("R-6.2.7c")
def test_another_clinic_never_sees_the_first_clinics_objects(world):
    holes = other_clinic_holes(world)
    assert not holes, "another clinic reached the first clinic's data:\n" + "\n".join(holes)


def test_a_new_route_without_a_check_fails_the_walk(world, settings):
    settings.ROOT_URLCONF = "tests.security.leaky_urls"
    assert "GET /leak/" + world.values["study"] + "/ -> 200" in anonymous_holes(world)
    assert any(hole.startswith("other clinic's token: GET /leak/") for hole in other_clinic_holes(world))


def test_every_public_route_is_listed_with_a_reason():
    for route in all_routes():
        reason = route.public_reason
        assert reason is None or len(reason) > 10
