"""The OHIF viewer served same-origin at /viewer/: entry, assets, caching, fallback, app-config.js."""

from __future__ import annotations

import gzip
import json

import pytest
from django.utils.http import http_date

BUNDLE = "app.bundle.0f6159c501addfe9.js"


@pytest.fixture
def ohif_build(settings, tmp_path):
    """A small build laid out like @ohif/app's dist/ after scripts/fetch-ohif.sh."""
    root = tmp_path / "ohif"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(
        '<!doctype html><html lang="zh-CN"><script>window.PUBLIC_URL="/viewer/"</script>'
        f'<script src="/viewer/app-config.js"></script><script defer src="/viewer/{BUNDLE}"></script>',
        encoding="utf-8",
    )
    (root / BUNDLE).write_text('__webpack_require__.p = "/viewer/";' + "x" * 5000, encoding="utf-8")
    (root / (BUNDLE + ".gz")).write_bytes(gzip.compress((root / BUNDLE).read_bytes()))
    (root / "0ddf166f7a343eda.wasm").write_bytes(b"\0asm\1\0\0\0")
    (root / "assets" / "favicon.ico").write_bytes(b"\0\0\1\0")
    (root / "app-config.js").write_text("window.config = {dataSources: ['the bundle default']};")
    settings.VETPACS_OHIF_DIR = str(root)
    return root


def fetch(client, url, **headers):
    """GET and read the whole body (the test client then closes the file a FileResponse streams from)."""
    resp = client.get(url, **headers)
    body = b"".join(resp.streaming_content) if resp.streaming else resp.content
    return resp, body


@pytest.fixture
def user_client(client, clinic):
    from vetpacs.apps.orgs.services import create_user

    create_user(username="li", password="Li-Passw0rd!", organisation=clinic)
    client.login(username="li", password="Li-Passw0rd!")
    return client


@pytest.mark.requirement("R-6.2.2c")
def test_anonymous_user_opening_a_study_is_sent_to_login_and_back(client, ohif_build, db):
    resp = client.get("/viewer/viewer?StudyInstanceUIDs=1.2.3&lng=zh")
    assert resp.status_code == 302
    assert resp["Location"].startswith("/login/?next=")
    assert "StudyInstanceUIDs%3D1.2.3" in resp["Location"]


@pytest.mark.requirement("R-6.2.2c")
def test_viewer_routes_fall_back_to_the_app_for_a_logged_in_user(user_client, ohif_build):
    for url in ("/viewer/", "/viewer/viewer?StudyInstanceUIDs=1.2.3&lng=zh", "/viewer/viewer/dicomweb"):
        resp, body = fetch(user_client, url)
        assert resp.status_code == 200, url
        assert resp["Content-Type"] == "text/html; charset=utf-8"
        assert resp["Cache-Control"] == "no-cache"
        assert b'window.PUBLIC_URL="/viewer/"' in body


def test_hashed_bundle_is_javascript_cached_for_a_year(client, ohif_build, db):
    resp, _ = fetch(client, f"/viewer/{BUNDLE}")
    assert resp.status_code == 200
    assert resp["Content-Type"] == "text/javascript; charset=utf-8"
    assert resp["Cache-Control"] == "public, max-age=31536000, immutable"
    assert resp["X-Content-Type-Options"] == "nosniff"
    assert "Content-Encoding" not in resp


def test_bundle_is_sent_gzipped_to_a_browser_that_accepts_it(client, ohif_build, db):
    resp, body = fetch(client, f"/viewer/{BUNDLE}", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert resp["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in resp["Vary"]
    assert gzip.decompress(body) == (ohif_build / BUNDLE).read_bytes()
    assert int(resp["Content-Length"]) == (ohif_build / (BUNDLE + ".gz")).stat().st_size


def test_wasm_codec_has_the_type_streaming_compilation_needs(client, ohif_build, db):
    resp, body = fetch(client, "/viewer/0ddf166f7a343eda.wasm")
    assert body.startswith(b"\0asm")
    assert resp["Content-Type"] == "application/wasm"


def test_unchanged_file_answers_not_modified(client, ohif_build, db):
    mtime = (ohif_build / "assets" / "favicon.ico").stat().st_mtime
    resp = client.get("/viewer/assets/favicon.ico", HTTP_IF_MODIFIED_SINCE=http_date(mtime + 1))
    assert resp.status_code == 304


def test_missing_chunk_is_404_not_the_app_page(user_client, ohif_build):
    assert user_client.get("/viewer/9999.bundle.0123456789abcdef.js").status_code == 404


def test_paths_outside_the_build_are_not_served(user_client, ohif_build, tmp_path):
    (tmp_path / "secret.txt").write_text("not for the browser")
    for url in ("/viewer/..%2Fsecret.txt", "/viewer/../secret.txt", "/viewer/%2E%2E/secret.txt"):
        resp, body = fetch(user_client, url)
        assert resp.status_code == 404, url
        assert b"not for the browser" not in body


def test_missing_build_says_how_to_install_it(user_client, settings, tmp_path):
    settings.VETPACS_OHIF_DIR = str(tmp_path / "absent")
    resp = user_client.get("/viewer/viewer")
    assert resp.status_code == 503
    assert "make viewer" in resp.content.decode()


def _config(body: str) -> dict:
    start = body.index("var config = ") + len("var config = ")
    return json.JSONDecoder().raw_decode(body, start)[0]


@pytest.mark.requirement("R-6.2.2c")
@pytest.mark.requirement("R-7.1.5")  # wadors: the viewer decodes the stored lossless pixels, not a JPEG
def test_app_config_points_the_viewer_at_our_dicomweb_on_the_same_origin(client, ohif_build, db):
    resp = client.get("/viewer/app-config.js")
    assert resp.status_code == 200
    assert resp["Content-Type"] == "text/javascript; charset=utf-8"
    body = resp.content.decode()
    assert "the bundle default" not in body  # ours replaces the bundle's
    config = _config(body)
    assert config["routerBasename"] == "/viewer"
    source = config["dataSources"][0]
    assert config["defaultDataSourceName"] == source["sourceName"]
    conf = source["configuration"]
    assert conf["qidoRoot"] == conf["wadoRoot"] == conf["wadoUriRoot"] == "/dicomweb"
    assert "window.location.origin + source[key]" in body  # made absolute on the page's own origin
    assert conf["imageRendering"] == conf["thumbnailRendering"] == "wadors"
    assert conf["supportsFuzzyMatching"] is True
    assert conf["enableStudyLazyLoad"] is True
    assert conf["omitQuotationForMultipartRequest"] is True


def test_app_config_opens_the_viewer_in_chinese_unless_the_user_chose(client, ohif_build, db):
    body = client.get("/viewer/app-config.js").content.decode()
    assert 'localStorage.setItem("i18nextLng", "zh")' in body
    assert '!window.localStorage.getItem("i18nextLng")' in body


def test_studies_page_links_each_study_to_the_viewer_in_chinese(user_client, ingest, ohif_build):
    from tests.builders.dicom import image

    result = ingest(image(animal="旺财", owner="张伟"))
    page = user_client.get("/").content.decode()
    assert f"/viewer/viewer?StudyInstanceUIDs={result.study_instance_uid}&amp;lng=zh" in page
