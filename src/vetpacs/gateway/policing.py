"""How the gateway honours the platform's traffic policing (R-7.2.4a-e): 429 and its Retry-After.

The platform gives each gateway a request rate (apps/devices/policing.py). Over it, a request is
answered 429 with Retry-After; the gateway then sends nothing of that kind until the time has
passed: the upload workers share one hold-off, so sixteen parallel uploads do not each knock again.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable

import requests

TOO_MANY_REQUESTS = 429
DEFAULT_RETRY_AFTER_S = 5.0  # a 429 without a usable Retry-After
MAX_RETRY_AFTER_S = 600.0  # never stop for longer on the platform's word alone


def retry_after_s(resp: requests.Response) -> float | None:
    """Seconds a 429 or 503 asks to wait (RFC 9110 10.2.3: delta-seconds or an HTTP date); None otherwise."""
    if resp.status_code not in (TOO_MANY_REQUESTS, 503):
        return None
    raw = resp.headers.get("Retry-After", "").strip()
    seconds: float | None = None
    if raw.isdigit():
        seconds = float(raw)
    elif raw:
        try:
            when = email.utils.parsedate_to_datetime(raw)
            seconds = when.timestamp() - time.time()
        except (TypeError, ValueError):
            seconds = None
    if seconds is None:
        return DEFAULT_RETRY_AFTER_S if resp.status_code == TOO_MANY_REQUESTS else None
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


class HoldOff:
    """A time before which no worker sends; the latest Retry-After wins."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self._lock = threading.Lock()
        self.times_held = 0

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, self._clock() + seconds)
            self.times_held += 1

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._until - self._clock())


__all__ = ["HoldOff", "retry_after_s"]
