"""argon2id at OWASP's parameters, computed in a bounded pool so a login flood cannot take every core."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher

T = TypeVar("T")

# OWASP Password Storage Cheat Sheet (2025): argon2id, m=19 MiB, t=2, p=1.
OWASP_MEMORY_KIB = 19 * 1024
OWASP_TIME_COST = 2
OWASP_PARALLELISM = 1

_lock = threading.Lock()
_pool: threading.BoundedSemaphore | None = None
_occupancy = 0  # hashes running or waiting for a slot in this process


class HashingBusy(Exception):
    """Every hashing slot and every place in the queue is taken: answer 503, let the caller retry."""


def pool_size() -> int:
    """Hashes computed at once in this process: the cores a serving process may use for them.

    VETPACS_ARGON2_CONCURRENCY overrides; else the machine's cores shared among `vetpacs serve`'s
    worker processes (VETPACS_SERVE_WORKERS, set by the serve command), at least one.
    """
    configured = getattr(settings, "VETPACS_ARGON2_CONCURRENCY", 0)
    if configured:
        return int(configured)
    workers = max(1, int(os.environ.get("VETPACS_SERVE_WORKERS", "1") or 1))
    return max(1, (os.cpu_count() or 1) // workers)


def queue_limit() -> int:
    """Requests of this process that may hash or wait to hash at once.

    The rest of a worker's request threads (VETPACS_SERVE_THREADS, set by the serve command) stay
    free for pages, images and DICOMweb: a login beyond the limit is answered 503 at once, and its
    thread goes back to serving, instead of holding it while it waits for a core.
    """
    configured = getattr(settings, "VETPACS_ARGON2_QUEUE", 0)
    if configured:
        return int(configured)
    threads = int(os.environ.get("VETPACS_SERVE_THREADS", "0") or 0)
    if threads <= 1:
        return 1_000_000  # not under `vetpacs serve` (tests, commands): no admission limit
    return max(pool_size(), threads - 1)


def saturated() -> bool:
    """True while every place in this process's hashing queue is taken (read without the lock:
    a cheap early answer; bounded() decides exactly)."""
    return _occupancy >= queue_limit()


def _semaphore() -> threading.BoundedSemaphore:
    global _pool  # noqa: PLW0603 - one pool per process, made on first use
    if _pool is None:
        with _lock:
            if _pool is None:
                _pool = threading.BoundedSemaphore(pool_size())
    return _pool


def bounded(work: Callable[[], T]) -> T:
    """Run one hash with a slot of the pool, or raise HashingBusy when the queue is full.

    argon2 releases the GIL, so while at most pool_size() threads hash, the process's other
    threads keep serving with the remaining CPU; queue_limit() keeps threads free for them.
    """
    global _occupancy  # noqa: PLW0603 - a per-process count under _lock
    with _lock:
        if _occupancy >= queue_limit():
            raise HashingBusy
        _occupancy += 1
    try:
        with _semaphore():
            return work()
    finally:
        with _lock:
            _occupancy -= 1


class BoundedArgon2PasswordHasher(Argon2PasswordHasher):
    """Django's argon2 hasher (same "argon2" algorithm name, so stored hashes keep verifying and
    older parameters are upgraded at the next login) at OWASP's parameters, inside the pool."""

    time_cost = OWASP_TIME_COST
    memory_cost = OWASP_MEMORY_KIB
    parallelism = OWASP_PARALLELISM

    def encode(self, password: str, salt: str) -> str:
        return bounded(lambda: super(BoundedArgon2PasswordHasher, self).encode(password, salt))

    def verify(self, password: str, encoded: str) -> bool:
        return bounded(lambda: super(BoundedArgon2PasswordHasher, self).verify(password, encoded))
