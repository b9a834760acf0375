"""Traffic policing of the device endpoints (R-7.2.4a-e): a token bucket per gateway; none starves the rest.

Each gateway's credential (its bearer secret, hashed; or its application key id with the address it
calls from) has a bucket of `burst` requests refilled at `requests_per_s`. A request that finds the
bucket empty is answered 429 with Retry-After (the time until one token is back), before any database
work; the gateway waits that long (gateway/uploader.py, gateway/heartbeat.py). With several platform
processes the buckets live in Redis (`VETPACS_REDIS_URL`): one Lua script reads, refills and takes
atomically on Redis's own clock. Without Redis (one process, the embedded default) they live in the
process. Settings: `VETPACS_DEVICE_RATE_LIMIT`.

A rate limiter must not take the service down with it: if Redis cannot be reached the request is
let through and the failure logged.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from vetpacs.apps.appkeys import workflow
from vetpacs.apps.orgs.auth import problem_response
from vetpacs.core.errors import Errors, VetpacsError

log = logging.getLogger(__name__)

# The paths a gateway calls: the heartbeat, records, and the tus uploads (R-6.2.1g/h).
POLICED_PREFIXES = ("/api/v1/devices/heartbeat", "/api/v1/devices/records", "/api/v1/uploads/")
KEY_PREFIX = "vetpacs:device-bucket:"
MAX_MEMORY_BUCKETS = 100_000  # beyond this, buckets full again (idle) are dropped

# KEYS[1]: the bucket; ARGV: rate per second, burst. Returns {allowed (0/1), seconds to wait (text)}.
_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(b[1])
local stamp = tonumber(b[2])
if tokens == nil or stamp == nil then
  tokens = burst
  stamp = now
end
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0


class Buckets(Protocol):
    def take(self, key: str) -> Decision: ...


class MemoryBuckets:
    """Buckets in this process (one platform process: the embedded default, tests)."""

    def __init__(self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> Decision:
        now = self._clock()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - stamp) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                decision = Decision(True)
            else:
                self._buckets[key] = (tokens, now)
                decision = Decision(False, (1 - tokens) / self.rate)
            if len(self._buckets) > MAX_MEMORY_BUCKETS:
                self._drop_full(now)
        return decision

    def _drop_full(self, now: float) -> None:
        refill = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}


class RedisBuckets:
    """Buckets in Redis, shared by every platform process."""

    def __init__(self, url: str, rate_per_s: float, burst: int) -> None:
        import redis

        self.rate = rate_per_s
        self.burst = burst
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._script = self.client.register_script(_LUA)

    def take(self, key: str) -> Decision:
        import redis

        try:
            allowed, wait = self._script(keys=[KEY_PREFIX + key], args=[self.rate, self.burst])
        except redis.RedisError as exc:
            log.warning("device rate limit: Redis unavailable, request let through: %s", exc)
            return Decision(True)
        return Decision(bool(int(allowed)), float(wait))


_current: tuple[tuple[Any, ...], Buckets | None] | None = None
_current_lock = threading.Lock()


def buckets() -> Buckets | None:
    """The buckets the settings ask for (None: policing off), made once per distinct setting."""
    global _current  # noqa: PLW0603 - one set of buckets per process, remade when settings change (tests)
    conf = settings.VETPACS_DEVICE_RATE_LIMIT
    ident = (float(conf.get("requests_per_s") or 0), int(conf.get("burst") or 0), conf.get("redis_url") or "")
    with _current_lock:
        if _current is None or _current[0] != ident:
            rate, burst, url = ident
            made: Buckets | None = None
            if rate > 0:
                burst = max(1, burst)
                made = RedisBuckets(url, rate, burst) if url else MemoryBuckets(rate, burst)
            _current = (ident, made)
        return _current[1]


def bucket_key(request: HttpRequest) -> str | None:
    """The caller's credential, hashed: one bucket per gateway, None for callers without one.

    A bearer caller's bucket is named by its secret, which only it knows. A caller signing with an
    application key (R-7.3.4.3a) sends its key id in the clear and a signature that changes with every
    request; the signature is checked later, against the database, which policing runs before. Its
    bucket is therefore named by the key id *and* the address the request comes from: a caller that
    copies another's key id from a log, elsewhere, fills a bucket of its own, not the key owner's."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() == "bearer" and secret.strip():
        return hashlib.sha256(secret.strip().encode()).hexdigest()[:32]
    if scheme == workflow.ALGORITHM:
        parsed = workflow.parse_authorization(header)
        if parsed is not None:
            address = request.META.get("REMOTE_ADDR") or ""
            return hashlib.sha256(f"app-key\0{parsed[0]}\0{address}".encode()).hexdigest()[:32]
    return None


def too_many(retry_after_s: float) -> HttpResponse:
    seconds = max(1, math.ceil(retry_after_s))
    resp = problem_response(
        VetpacsError(Errors.DEVICE_RATE_LIMITED, f"over this gateway's request rate; retry after {seconds} s")
    )
    resp["Retry-After"] = str(seconds)
    return resp


class DevicePolicingMiddleware:
    """429 with Retry-After for a gateway over its rate, before sessions, authentication or the database."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(POLICED_PREFIXES):
            key = bucket_key(request)
            policed = buckets() if key is not None else None
            if policed is not None and key is not None:
                decision = policed.take(key)
                if not decision.allowed:
                    return too_many(decision.retry_after_s)
        return self.get_response(request)


__all__ = ["Decision", "DevicePolicingMiddleware", "MemoryBuckets", "RedisBuckets", "buckets"]
