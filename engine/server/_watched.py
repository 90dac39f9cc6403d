"""A small JSON file in the root folder, re-read whenever its mtime or size changes.

Operators edit these files by hand while the server runs (tokens, legacy repo ids), so every
lookup checks the file's signature. A missing file reads as `{}`. A malformed one is refused when
the server starts (`problem()`); one broken while it runs keeps the last good content, with a
warning in the log: a typo must not lock every token out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from engine._cache import atomic_write

T = TypeVar("T")
_log = logging.getLogger("batuta.serve")


class WatchedJson(Generic[T]):
    """The file's top-level object, turned into a `T` by `parse`, cached until the file changes."""

    def __init__(self, path: Path, parse: Callable[[dict[str, object]], T]) -> None:
        self.path = path
        self._parse = parse
        self._lock = threading.Lock()
        self._sig: tuple[int, int] | None = None
        self._value = parse({})

    def get(self) -> T:
        try:
            st = self.path.stat()
            sig: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            sig = None
        with self._lock:
            if sig != self._sig:
                self._sig = sig
                if sig is None:
                    self._value = self._parse({})
                elif (loaded := self._load())[1] is not None:
                    _log.warning("%s; keeping what it said before", loaded[1])
                else:
                    self._value = self._parse(loaded[0])
            return self._value

    def _load(self) -> tuple[dict[str, object], str | None]:
        """The file's object (`{}` when absent), and why it cannot be used when it cannot."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}, None
        except (OSError, ValueError) as exc:
            return {}, f"{self.path.name} is not valid JSON: {exc}"
        if not isinstance(data, dict):
            return {}, f"{self.path.name} must hold a JSON object"
        return data, None

    def problem(self) -> str | None:
        """Why the file cannot be used (not JSON, not an object), or None (also when absent)."""
        return self._load()[1]

    def read_raw(self) -> dict[str, object]:
        return self._load()[0]

    def update(self, change: Callable[[dict[str, object]], None]) -> None:
        """Apply `change` to the file's object and replace the file atomically.

        A malformed file raises ValueError: rewriting it would throw away what the operator wrote.
        """
        with self._lock:
            data, why = self._load()
            if why is not None:
                raise ValueError(why)
            change(data)
            atomic_write(self.path, json.dumps(data, indent=2, sort_keys=True).encode())
            self._sig = None
        with contextlib.suppress(OSError):
            self.get()
