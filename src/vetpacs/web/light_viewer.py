"""Serves the light viewer (Cornerstone3D, built by scripts/build-light-viewer.sh) at /m/ (R-6.2.2d).

The same build carries the vendored browser libraries of the pages (htmx, ECharts) under /m/vendor/,
so every script a page loads comes from this origin (no CDN: clinics' networks and WeChat block many).
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path, re_path
from django.views.decorators.http import require_GET

from vetpacs.web.viewer import _IMMUTABLE, _file_response, _resolve

BASE = "/m/"
# The image decoders are Emscripten WebAssembly run in module workers; embind builds functions at
# run time, so this viewer's own files need 'unsafe-eval' and 'wasm-unsafe-eval' (as OHIF's do).
_CSP = {
    "default-src": "'self'",
    "script-src": "'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:",
    "worker-src": "'self' blob:",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: blob:",
    "connect-src": "'self' data: blob:",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}


def content_security_policy() -> str:
    ancestors = ["'self'", *getattr(settings, "VETPACS_FRAME_ANCESTORS", [])]
    return "; ".join([*(f"{k} {v}" for k, v in _CSP.items()), "frame-ancestors " + " ".join(ancestors)])


def light_viewer_root() -> Path:
    """VETPACS_LIGHT_VIEWER_DIR, else build/light-viewer of the checkout."""
    configured = getattr(settings, "VETPACS_LIGHT_VIEWER_DIR", None) or os.environ.get(
        "VETPACS_LIGHT_VIEWER_DIR"
    )
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "build" / "light-viewer"


@require_GET
def serve(request: HttpRequest, subpath: str = "") -> HttpResponse:
    root = light_viewer_root()
    if not subpath or subpath.endswith("/") or subpath == "index.html":
        if not request.user.is_authenticated:
            # Share links will open it without an account later; until then it is for signed-in users.
            return redirect_to_login(request.get_full_path())
        if not (root / "index.html").is_file():
            return HttpResponse(
                "The light viewer is not built: run `make light-viewer` (scripts/build-light-viewer.sh).\n"
                "手机看图组件未构建：请运行 make light-viewer。\n",
                status=503,
                content_type="text/plain; charset=utf-8",
            )
        response = _file_response(request, root / "index.html")
        response["Content-Security-Policy"] = content_security_policy()
        return response
    target = _resolve(root, subpath)
    if target is None:
        raise Http404(f"no light viewer file {subpath!r}")
    response = _file_response(request, target)
    response["Content-Security-Policy"] = content_security_policy()
    if subpath.startswith("assets/") and response.status_code == 200:
        # Vite names every file under assets/ by its content hash: it never changes.
        response["Cache-Control"] = _IMMUTABLE
    return response


urlpatterns = [
    path("", serve, name="light-viewer"),
    re_path(r"^(?P<subpath>.+)$", serve),
]
