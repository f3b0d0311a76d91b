"""Logs each distinct failure once with its traceback.

The page polls `/runs`; a run whose analysis fails would otherwise print the
same traceback into TensorBoard's console every few seconds.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("tb_stagnation.plugin")

_MAX_REMEMBERED = 1000


class OnceLogger:
    """Remembers which failures were logged; repeats go to DEBUG."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def exception(self, where: str, error: BaseException) -> None:
        """Log `error` (call from an `except` block) unless already logged."""
        key = (where, type(error).__name__, str(error)[:500])
        with self._lock:
            first = key not in self._seen
            if first:
                if len(self._seen) >= _MAX_REMEMBERED:
                    self._seen.clear()
                self._seen.add(key)
        if first:
            logger.error("%s failed: %s: %s", where, type(error).__name__, error, exc_info=error)
        else:
            logger.debug("%s failed again: %s: %s", where, type(error).__name__, error)
