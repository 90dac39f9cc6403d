"""batuta's transfer engine: the public API.

```python
from engine import Engine, RepoRef, load_config

async with Engine(load_config()) as engine:
    info = await engine.info(RepoRef.parse("model", "acme/tiny"))
```
"""

from engine._api import RepoInfo, RepoSummary
from engine._config import EngineConfig, HostLimits, RetryPolicy, load_config
from engine._engine import Engine, FileReport, InfoResult
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
