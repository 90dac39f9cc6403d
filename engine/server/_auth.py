"""Tokens and what they may do, read from `<root>/tokens.json` (reloaded when the file changes).

```json
{"hf_write_xxx": {"user": "alice", "role": "write"},
 "hf_read_yyy":  {"user": "bob", "role": "read", "gated": true, "namespaces": ["acme"]}}
```

* `role`: `read` (read private repos) or `write` (read and write).
* `gated`: may download files of gated repos (everyone may read their metadata).
* `namespaces` (optional): limits the token to these namespaces plus the user's own; without
  it the token reaches every namespace. A user always has access to its own namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROLES = ("read", "write")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """One token's owner and rights."""

    token: str
    user: str
    role: str = "read"
    gated: bool = False
    namespaces: tuple[str, ...] | None = None

    def reaches(self, namespace: str) -> bool:
        if self.namespaces is None or namespace.lower() == self.user.lower():
            return True
        return namespace.lower() in (n.lower() for n in self.namespaces)

    def may_write(self, namespace: str) -> bool:
        return self.role == "write" and self.reaches(namespace)

    def may_download_gated(self, namespace: str) -> bool:
        return (self.gated and self.reaches(namespace)) or namespace.lower() == self.user.lower()

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"user": self.user, "role": self.role, "gated": self.gated}
        if self.namespaces is not None:
            out["namespaces"] = list(self.namespaces)
        return out


def _parse(token: str, raw: object) -> TokenInfo | None:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("user"), str):
        return None
    role = raw.get("role", "read")
    ns = raw.get("namespaces")
    return TokenInfo(
        token=token,
        user=str(raw["user"]),
        role=role if role in ROLES else "read",
        gated=bool(raw.get("gated", False)),
        namespaces=tuple(str(n) for n in ns) if isinstance(ns, list) else None,
    )


class TokenBook:
    """The tokens file, re-read whenever its mtime or size changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._sig: tuple[int, int] | None = None
        self._tokens: dict[str, TokenInfo] = {}

    def get(self, token: str) -> TokenInfo | None:
        self._refresh()
        with self._lock:
            return self._tokens.get(token)

    def add(self, info: TokenInfo) -> None:
        """Add or replace a token in the file (atomically, so a running server never reads half)."""
        with self._lock:
            data = self._read_raw()
            data[info.token] = info.to_json()
            tmp = self._path.with_name(f".{self._path.name}.{threading.get_ident()}.tmp")
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
            os.replace(tmp, self._path)
            self._sig = None
        self._refresh()

    def _read_raw(self) -> dict[str, object]:
        try:
            data = json.loads(self._path.read_text())
        except (OSError, ValueError):
            return {}
        return dict(data) if isinstance(data, dict) else {}

    def _refresh(self) -> None:
        try:
            st = self._path.stat()
            sig: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            sig = None
        with self._lock:
            if sig == self._sig and (sig is not None or not self._tokens):
                return
            tokens: dict[str, TokenInfo] = {}
            if sig is not None:
                with contextlib.suppress(OSError, ValueError):
                    for tok, raw in self._read_raw().items():
                        if (info := _parse(tok, raw)) is not None:
                            tokens[tok] = info
            self._tokens, self._sig = tokens, sig
