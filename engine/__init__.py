"""batuta's transfer engine: the public API.

```python
from engine import Engine, RepoRef, load_config

async with Engine(load_config()) as engine:
    info = await engine.info(RepoRef.parse("model", "acme/tiny"))
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine._errors import (
    AuthRequiredError,
    BatutaError,
    ConflictError,
    ConnectError,
    ForbiddenError,
    GatedRepoError,
    HubError,
    HubServerError,
    IntegrityError,
    NotFoundError,
    OfflineError,
    ProtocolError,
    RateLimitedError,
    SecretsFoundError,
    TransferIncompleteError,
    TransferTimeoutError,
    TransportError,
    UsageError,
)
from engine._events import (
    BytesMoved,
    Event,
    EventSink,
    FileFailed,
    FileFinished,
    FileHashed,
    FileStarted,
    HostPaused,
    Notice,
    PlanReady,
    RetryScheduled,
    discard,
)
from engine._models import RemoteFile, RepoRef, parse_repo_type, validate_repo_id

if TYPE_CHECKING:
    from engine._api import RepoInfo, RepoSummary
    from engine._config import EngineConfig, HostLimits, RetryPolicy, load_config
    from engine._engine import Engine, FileReport, InfoResult

# The engine itself (and with it asyncio and the HTTP stack) loads on first use: errors, events
# and value types are all that the CLI's error mapping, `hf tree` and the server need.
_LAZY = {
    "RepoInfo": "engine._api",
    "RepoSummary": "engine._api",
    "EngineConfig": "engine._config",
    "HostLimits": "engine._config",
    "RetryPolicy": "engine._config",
    "load_config": "engine._config",
    "Engine": "engine._engine",
    "FileReport": "engine._engine",
    "InfoResult": "engine._engine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AuthRequiredError",
    "BatutaError",
    "BytesMoved",
    "ConflictError",
    "ConnectError",
    "Engine",
    "EngineConfig",
    "Event",
    "EventSink",
    "FileFailed",
    "FileFinished",
    "FileHashed",
    "FileReport",
    "FileStarted",
    "ForbiddenError",
    "GatedRepoError",
    "HostLimits",
    "HostPaused",
    "HubError",
    "HubServerError",
    "InfoResult",
    "IntegrityError",
    "NotFoundError",
    "Notice",
    "OfflineError",
    "PlanReady",
    "ProtocolError",
    "RateLimitedError",
    "RemoteFile",
    "RepoInfo",
    "RepoRef",
    "RepoSummary",
    "RetryPolicy",
    "RetryScheduled",
    "SecretsFoundError",
    "TransferIncompleteError",
    "TransferTimeoutError",
    "TransportError",
    "UsageError",
    "discard",
    "load_config",
    "parse_repo_type",
    "validate_repo_id",
]
