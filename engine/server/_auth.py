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

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.server._watched import WatchedJson

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
    """The tokens file, re-read whenever it changes."""

    def __init__(self, path: Path) -> None:
        self._file = WatchedJson(path, _parse_all)

    def get(self, token: str) -> TokenInfo | None:
        return self._file.get().get(token)

    def add(self, info: TokenInfo) -> None:
        """Add or replace a token in the file (atomically, so a running server never reads half)."""
        self._file.update(lambda data: data.__setitem__(info.token, info.to_json()))


def _parse_all(raw: dict[str, object]) -> dict[str, TokenInfo]:
    return {tok: info for tok, value in raw.items() if (info := _parse(tok, value)) is not None}
