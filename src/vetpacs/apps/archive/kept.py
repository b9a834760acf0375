"""Values kept per process under the archive's generation: used only while nothing in the index changed.

Every index-changing transaction bumps the generation (archive.generation), so a kept value built at
the current generation is exactly what building it again would give. A bound on age covers what the
generation cannot see (a database restored under a running process would repeat old generations).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

V = TypeVar("V")
_every: weakref.WeakSet[KeptByGeneration[Any]] = weakref.WeakSet()


def clear_all() -> None:
    """Forget every kept value of this process (tests roll their databases back, so generations repeat)."""
    for kept in list(_every):
        kept.clear()


class KeptByGeneration(Generic[V]):
    def __init__(self, max_entries: int, max_age_seconds: float) -> None:
        self.max_entries, self.max_age = max_entries, max_age_seconds
        self._entries: OrderedDict[Hashable, tuple[int, float, V]] = OrderedDict()
        self._lock = threading.Lock()
        _every.add(self)

    def get(self, key: Hashable, generation: int) -> V | None:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[0] != generation or now - hit[1] >= self.max_age:
                return None
            self._entries.move_to_end(key)
            return hit[2]

    def get_many(self, keys: Sequence[Hashable], generation: int) -> list[V | None]:
        return [self.get(key, generation) for key in keys]

    def put(self, key: Hashable, generation: int, value: V) -> None:
        self.put_many({key: value}, generation)

    def put_many(self, entries: Mapping[Hashable, V], generation: int) -> None:
        now = time.monotonic()
        with self._lock:
            for key, value in entries.items():
                self._entries[key] = (generation, now, value)
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
