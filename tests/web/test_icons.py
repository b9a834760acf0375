"""The site's icons: asked for at the root by browsers and phones, answered without a login."""

from __future__ import annotations

from django.contrib.staticfiles import finders
from PIL import Image


def test_the_root_icons_lead_to_the_static_files_without_a_login(client, db):
    for path in ("/favicon.ico", "/apple-touch-icon.png"):
        resp = client.get(path)
        assert resp.status_code == 301 and resp["Location"] == f"/static/vetpacs{path}"
        assert client.post(path).status_code == 405


def test_the_icon_holds_the_sizes_browsers_ask_for():
    with Image.open(finders.find("vetpacs/favicon.ico")) as icon:
        assert {(16, 16), (32, 32), (48, 48)} <= set(icon.info["sizes"])
    with Image.open(finders.find("vetpacs/apple-touch-icon.png")) as touch:
        assert touch.size == (180, 180)
