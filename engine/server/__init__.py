"""A Hub-compatible HTTP server over a folder of repos: the engine behind `batuta hf serve`.

```python
await run_server(Path("hub-root"), port=8080, on_ready=lambda api, blobs: ...)
```

Two listeners: the API (info, search, tree, resolve, uploads) and a CDN-like blob listener on
another origin that serves LFS content and receives uploads through signed URLs. The folder
layout, the tokens file and the test-only admin routes are described in `LAYOUT.md`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import anyio

from engine.server._app import HubServer
from engine.server._context import ServerConfig
from engine.server._faults import HubStats, RequestRecord
from engine.server._rules import DEFAULT_LFS_PATTERNS, is_lfs
from engine.server._store import ALIASES_FILE
from engine.server._watched import WatchedJson

__all__ = [
    "DEFAULT_LFS_PATTERNS",
    "config_problem",
    "HubServer",
    "HubStats",
    "RequestRecord",
    "ServerConfig",
    "is_lfs",
    "run_server",
    "serve_forever",
]


def config_problem(root: Path | str) -> str | None:
    """Why the operator files in `root` (tokens.json, aliases.json) cannot be used, or None.

    Checked before serving: a malformed tokens.json would otherwise read as no tokens at all.
    """
    for name in ("tokens.json", ALIASES_FILE):
        if (why := WatchedJson(Path(root) / name, dict).problem()) is not None:
            return why
    return None


async def run_server(
    root: Path | str,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    blob_port: int = 0,
    testing: bool = False,
    on_ready: Callable[[str, str], None] | None = None,
    config: ServerConfig | None = None,
) -> None:
    """Serve `root` until cancelled; `on_ready(api_url, blob_url)` is called once both listen.

    Settings other than the arguments come from `config` (its root/host/ports are overridden).
    Raises OSError when a port cannot be bound.
    """
    base = config or ServerConfig(root=Path(root))
    cfg = replace(
        base, root=Path(root), host=host, port=port, blob_port=blob_port, testing=testing or base.testing
    )
    async with HubServer(cfg) as server:
        if on_ready is not None:
            on_ready(server.url, server.blob_url)
        await anyio.sleep_forever()


def serve_forever(
    root: Path | str,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    blob_port: int = 0,
    testing: bool = False,
    on_ready: Callable[[str, str], None] | None = None,
    config: ServerConfig | None = None,
) -> None:
    """Blocking form of run_server for the CLI: returns on Ctrl-C."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_server(
                root, host, port, blob_port=blob_port, testing=testing, on_ready=on_ready, config=config
            )
        )
