"""A thread-safe LRU of per-run results, valid while the run is unchanged.

TensorBoard answers requests on many threads; entries are replaced whole
under one lock, so a reader sees either the old result or the new one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class FingerprintCache:
    """Maps a key to (fingerprint, value); a lookup with another fingerprint
    misses, so a run that grew is recomputed. Holds at most `capacity` keys,
    dropping the least recently used."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self._capacity = capacity
        self._entries: OrderedDict[Hashable, tuple[Hashable, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self._capacity

    def get(self, key: Hashable, fingerprint: Hashable) -> Any | None:
        """The value stored for `key` under exactly `fingerprint`, else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != fingerprint:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: Hashable, fingerprint: Hashable, value: Any) -> None:
        with self._lock:
            self._entries[key] = (fingerprint, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
