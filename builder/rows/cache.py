"""A cache bounded by bytes: what a process keeps of its decoded inputs (builder.rows.pixels), prepared cut-outs
(builder.rows.composite) and backgrounds' ground (builder.rows.render), whatever the number of inputs."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")
INPUT_CACHE_BYTES = 32 * 2**20  # per process: ~200 decoded backgrounds at R = 224, or all of a small run's inputs


class LruCache:
    """Values by key; once their bytes pass `budget_bytes` the least recently used are dropped (a value larger
    than the whole budget is returned, never kept). Thread-safe (verify checks rows on threads): a key that two
    threads miss at once is made twice, and kept once."""

    def __init__(self, budget_bytes: int = INPUT_CACHE_BYTES):
        self.budget_bytes, self.cached_bytes = budget_bytes, 0
        self.made = 0  # values made, i.e. misses (tests and benchmarks read it)
        self._entries: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], tuple[T, int]]) -> T:
        """The value of `key`, made by `make()` -> (value, its bytes) when not kept."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
        value, nbytes = make()
        with self._lock:
            self.made += 1
            if nbytes <= self.budget_bytes and key not in self._entries:
                self._entries[key] = (value, nbytes)
                self.cached_bytes += nbytes
                while self.cached_bytes > self.budget_bytes:
                    self.cached_bytes -= self._entries.popitem(last=False)[1][1]
        return value

    def values(self) -> list:
        """The values kept now, least recently used first."""
        with self._lock:
            return [value for value, _ in self._entries.values()]
