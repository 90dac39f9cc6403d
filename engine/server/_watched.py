"""A small JSON file in the root folder, re-read whenever its mtime or size changes.

Operators edit these files by hand while the server runs (tokens, legacy repo ids), so every
lookup checks the file's signature; a missing or malformed file reads as `{}`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


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
                self._value, self._sig = self._parse(self.read_raw() if sig else {}), sig
            return self._value

    def read_raw(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return dict(data) if isinstance(data, dict) else {}

    def update(self, change: Callable[[dict[str, object]], None]) -> None:
        """Apply `change` to the file's object and replace the file atomically."""
        with self._lock:
            data = self.read_raw()
            change(data)
            tmp = self.path.with_name(f".{self.path.name}.{threading.get_ident()}.tmp")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
            os.replace(tmp, self.path)
            self._sig = None
        with contextlib.suppress(OSError):
            self.get()
