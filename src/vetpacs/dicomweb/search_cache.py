"""Cache of QIDO-RS answers, per process, never stale: an entry is used only while the archive's
generation (bumped in every index-changing transaction) is the one it was built at.

A clinic's staff refreshing the same worklist query at once (R-7.1.2a: 1024 users) then costs one
lookup of the generation instead of a search each.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from vetpacs.apps.archive.kept import KeptByGeneration
from vetpacs.apps.archive.queries import current_generation

MAX_ENTRIES = 512
# A bound on top of the generation check, for what it cannot see (a database restored under a
# running process would repeat old generations).
MAX_AGE_SECONDS = 30.0
MAX_BODY_BYTES = 1024 * 1024
_HEADERS = ("Content-Type", "Warning")

_entries: OrderedDict[tuple[Any, ...], tuple[int, float, bytes, dict[str, str]]] = OrderedDict()
_lock = threading.Lock()


def _key(request: HttpRequest) -> tuple[Any, ...]:
    principal = request.principal  # type: ignore[attr-defined]
    # Everything the answer depends on: who may see what (organisations, hence owner identity), the
    # query, and the origin (RetrieveURL is absolute).
    return (
        request.path,
        tuple(sorted((k, tuple(v)) for k, v in request.GET.lists())),
        tuple(sorted(principal.organisation_ids)),
        request.scheme,
        request.get_host(),
        request.headers.get("Accept", ""),
    )


def cached_search(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = (*_key(request), args, tuple(sorted(kwargs.items())))
        generation = current_generation()
        # The view builds on the same generation (read once, before anything of the index).
        request.archive_generation = generation  # type: ignore[attr-defined]
        now = time.monotonic()
        with _lock:
            hit = _entries.get(key)
            fresh = hit is not None and hit[0] == generation and now - hit[1] < MAX_AGE_SECONDS
            if fresh:
                _entries.move_to_end(key)
        if fresh and hit is not None:
            resp = HttpResponse(hit[2], status=200)
            for name, value in hit[3].items():
                resp[name] = value
            return resp
        resp = view(request, *args, **kwargs)
        if resp.status_code == 200 and not resp.streaming and len(resp.content) <= MAX_BODY_BYTES:
            headers = {h: resp[h] for h in _HEADERS if h in resp}
            with _lock:
                _entries[key] = (generation, now, resp.content, headers)
                _entries.move_to_end(key)
                while len(_entries) > MAX_ENTRIES:
                    _entries.popitem(last=False)
        return resp

    return wrapper


def clear() -> None:
    with _lock:
        _entries.clear()
    _fragments.clear()


# --- one study's result, encoded, for any search whose page shows it ------------------------------------
# Searches that differ (another date range, another filter, another offset) mostly show the same studies
# again: a worklist's newest ones. A study's DICOM JSON result depends on the study's row, its owner's
# decrypted attributes (for the owning clinic), the service root of RetrieveURL and which attributes the
# search matched on, so an encoded result is kept under those, and used only while the archive's
# generation is the one it was built at (like whole answers above).

FRAGMENTS_MAX = 8192
FragmentKey = tuple[Any, ...]
_fragments: KeptByGeneration[bytes] = KeptByGeneration(FRAGMENTS_MAX, MAX_AGE_SECONDS)


def fragments(keys: list[FragmentKey], generation: int) -> list[bytes | None]:
    """The encoded results kept for these keys at this generation (None where there is none)."""
    return _fragments.get_many(keys, generation)


def keep_fragments(entries: dict[FragmentKey, bytes], generation: int) -> None:
    _fragments.put_many(entries, generation)
