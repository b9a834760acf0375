"""Serves the prebuilt OHIF viewer same-origin at /viewer/, with our own app-config.js (R-6.2.2c)."""

from __future__ import annotations

import json
import mimetypes
import os
import re
from pathlib import Path

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.urls import path, re_path
from django.utils.cache import patch_vary_headers
from django.utils.http import http_date
from django.views.decorators.http import require_GET
from django.views.static import was_modified_since

BASE = "/viewer/"
# Files whose names carry a content hash never change: cache them for a year (RFC 8246 immutable).
_HASHED = re.compile(r"[.-][0-9a-f]{16}\.(js|css|wasm|woff2?)$")
_IMMUTABLE = "public, max-age=31536000, immutable"
# Everything else (index.html, app-config.js, icons) is revalidated on each load, so an upgrade
# of the viewer shows at once.
_REVALIDATE = "no-cache"
# A missing file with one of these extensions is a 404, not the SPA's index.html: a browser that
# asks for a chunk must not be handed HTML.
_ASSET_SUFFIXES = {
    ".js", ".mjs", ".css", ".wasm", ".json", ".jsonc", ".map", ".png", ".ico", ".svg", ".woff",
    ".woff2", ".ttf", ".xml", ".txt", ".html", ".gz",
}  # fmt: skip
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",  # WebAssembly.instantiateStreaming needs exactly this type
    ".json": "application/json",
    ".jsonc": "application/json",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ico": "image/x-icon",
}
_COMPRESSIBLE = {".js", ".mjs", ".css", ".wasm", ".json", ".html", ".svg"}


def viewer_root() -> Path:
    """Where scripts/fetch-ohif.sh put the build (VETPACS_OHIF_DIR, else build/ohif of the checkout)."""
    configured = getattr(settings, "VETPACS_OHIF_DIR", None) or os.environ.get("VETPACS_OHIF_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "build" / "ohif"


def app_config(request: HttpRequest) -> HttpResponse:
    """OHIF's window.config: the DICOMweb data source is our own /dicomweb on the same origin.

    Same origin means the browser sends the session cookie with every QIDO/WADO request (XHR and
    fetch default to credentials "same-origin"), so the viewer needs no token of its own.
    """
    data_source = {
        "friendlyName": "vetpacs",
        "name": "vetpacs",
        # Filled in with window.location.origin below: dicomweb-client wants absolute roots.
        "wadoUriRoot": "/dicomweb",
        "qidoRoot": "/dicomweb",
        "wadoRoot": "/dicomweb",
        "qidoSupportsIncludeField": True,
        "supportsReject": False,
        "supportsStow": True,
        "imageRendering": "wadors",
        "thumbnailRendering": "wadors",
        "enableStudyLazyLoad": True,
        "supportsFuzzyMatching": True,
        "supportsWildcard": True,
        "staticWado": False,
        "singlepart": "bulkdata,video",
        # PS3.18 8.7.3.3.4: omit the quotes around the transfer-syntax parameter in Accept.
        "omitQuotationForMultipartRequest": True,
        # PS3.18 F.2: metadata carries BulkDataURI for large values (pixel data); resolve them
        # against the study URL as the server returns them.
        "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
    }
    config = {
        "routerBasename": BASE.rstrip("/"),
        "extensions": [],
        "modes": [],
        "showStudyList": True,
        "maxNumberOfWebWorkers": 2,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "groupEnabledModesFirst": True,
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 25},
        "showErrorDetails": "production",
        # A clinical tool in daily use: the "investigational use only" modal would stop every open.
        "investigationalUseDialog": {"option": "never"},
        "customizationService": {
            # OHIF's first-visit tour is English-only and covers the image; the tools are labelled.
            "ohif.tours": {"$set": []},
            # Veterinary overlay: the animal's species and breed beside every image (PS3.3 C.7.1.1).
            "viewportOverlay.topRight": {
                "$set": [
                    _overlay_item("PatientSpeciesDescription", "物种"),
                    _overlay_item("PatientBreedDescription", "品种"),
                    # The owner as the archive returns it: in clear for the owning clinic, else a pseudonym.
                    _overlay_item("ResponsiblePerson", "主人"),
                ]
            },
            # Window presets a veterinary reader reaches for, by modality (width / level in HU for CT).
            "cornerstone.windowLevelPresets": {"$set": VETERINARY_WINDOW_PRESETS},
        },
        "defaultDataSourceName": "vetpacs",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "vetpacs",
                "configuration": data_source,
            }
        ],
    }
    body = f"""/* vetpacs: OHIF configuration, generated by vetpacs.web.viewer (replaces the bundle's). */
(function () {{
  var config = {json.dumps(config, ensure_ascii=False, indent=2)};
  var source = config.dataSources[0].configuration;
  ["qidoRoot", "wadoRoot", "wadoUriRoot"].forEach(function (key) {{
    source[key] = window.location.origin + source[key];
  }});
  // Unauthenticated (session expired): back to our login page, then to this very view.
  config.httpErrorHandler = function (error) {{
    if (error && error.status === 401) {{
      var next = window.location.pathname + window.location.search;
      window.location.href = "/login/?next=" + encodeURIComponent(next);
    }}
  }};
  // The OHIF logo leads back to the studies list.
  config.whiteLabeling = {{
    createLogoComponentFn: function (React) {{
      return React.createElement("a", {{
        href: "/", className: "text-primary-light text-lg font-semibold", "data-cy": "vetpacs-home",
        style: {{ color: "#5acce6", whiteSpace: "nowrap" }}
      }}, "vetpacs 兽医影像");
    }}
  }};
  // Chinese first: OHIF's i18next reads ?lng=, then localStorage; a choice the user made stays.
  try {{
    if (!/[?&]lng=/.test(window.location.search) && !window.localStorage.getItem("i18nextLng")) {{
      window.localStorage.setItem("i18nextLng", "zh");
    }}
  }} catch (e) {{ /* storage disabled: OHIF falls back to the browser's language */ }}
  window.config = config;
}})();
"""
    resp = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    resp["Cache-Control"] = _REVALIDATE
    return resp


def _presets(prefix: str, rows: list[tuple[str, int, int]]) -> list[dict[str, str]]:
    return [
        {"id": f"{prefix}-{i}", "description": name, "window": str(width), "level": str(level)}
        for i, (name, width, level) in enumerate(rows)
    ]


# Thorax, abdomen, bone and soft tissue first (the veterinary set), then the usual CT extras.
VETERINARY_WINDOW_PRESETS = {
    "CT": _presets(
        "vet-ct",
        [
            ("胸部 Thorax", 1500, -600),
            ("腹部 Abdomen", 400, 50),
            ("骨骼 Bone", 2000, 500),
            ("软组织 Soft tissue", 350, 40),
            ("脑 Brain", 80, 40),
        ],
    ),
    "MR": _presets("vet-mr", [("软组织 Soft tissue", 600, 300)]),
}


def _overlay_item(attribute: str, label: str) -> dict[str, str]:
    return {"id": attribute, "inheritsFrom": "ohif.overlayItem", "attribute": attribute, "label": label}


@require_GET
def serve(request: HttpRequest, subpath: str = "") -> HttpResponse:
    """A file of the build, or index.html for the viewer's own routes (/viewer/viewer?StudyInstanceUIDs=)."""
    root = viewer_root()
    if not (root / "index.html").is_file():
        return HttpResponse(
            "The OHIF viewer is not installed: run `make viewer` (scripts/fetch-ohif.sh).\n"
            "浏览器组件未安装：请运行 make viewer。\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    target = _resolve(root, subpath)
    if target is None:
        if Path(subpath).suffix.lower() in _ASSET_SUFFIXES:
            raise Http404(f"no viewer file {subpath!r}")
        target = root / "index.html"
    if target.name == "index.html" and not request.user.is_authenticated:
        # The viewer's entry page is for signed-in users; its public assets (the npm package) are not.
        return redirect_to_login(request.get_full_path())
    return _file_response(request, target)


def _resolve(root: Path, subpath: str) -> Path | None:
    if not subpath or subpath.endswith("/"):
        subpath += "index.html"
    candidate = (root / subpath).resolve()
    # No escaping the build directory with ../ or symlinks.
    if not candidate.is_relative_to(root.resolve()) or not candidate.is_file():
        return None
    return candidate


def _file_response(request: HttpRequest, target: Path) -> HttpResponse:
    stat = target.stat()
    if not was_modified_since(request.headers.get("If-Modified-Since"), int(stat.st_mtime)):
        return HttpResponseNotModified()
    suffix = target.suffix.lower()
    content_type = _TYPES.get(suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    served, encoding = target, None
    gz = target.with_name(target.name + ".gz")
    if suffix in _COMPRESSIBLE and "gzip" in request.headers.get("Accept-Encoding", "") and gz.is_file():
        served, encoding = gz, "gzip"
    resp = FileResponse(served.open("rb"), content_type=content_type)
    if encoding:
        resp["Content-Encoding"] = encoding
        resp["Content-Length"] = str(served.stat().st_size)
    patch_vary_headers(resp, ["Accept-Encoding"])
    resp["Last-Modified"] = http_date(stat.st_mtime)
    resp["Cache-Control"] = _IMMUTABLE if _HASHED.search(target.name) else _REVALIDATE
    resp["X-Content-Type-Options"] = "nosniff"
    if target.name == "index.html":
        # OHIF's toolbar and dialogs are not meant to be framed by other sites.
        resp["X-Frame-Options"] = "SAMEORIGIN"
    return resp


urlpatterns = [
    path("app-config.js", app_config, name="viewer-app-config"),
    path("", serve, name="viewer"),
    re_path(r"^(?P<subpath>.+)$", serve),
]
