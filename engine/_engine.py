"""Engine: the async context manager behind every command (search, info, pull, push)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from engine._api import HubApi, RepoInfo, RepoSummary, validate_revision, with_scan_verdicts
from engine._config import EngineConfig
from engine._errors import UsageError
from engine._events import EventSink, discard
from engine._hub import HubClient
from engine._models import RepoRef

if TYPE_CHECKING:
    from engine._pull import PullOptions, PullResult
    from engine._pushtypes import PushOptions, PushResult

SORT_KEYS = {"downloads": "downloads", "likes": "likes", "updated": "lastModified"}


class FileReport(NamedTuple):
    """One file of `info`: size, LFS or not, and its safety verdict."""

    path: str
    size: int
    lfs: bool
    safe: bool
    reason: str


class InfoResult(NamedTuple):
    info: RepoInfo
    repo_type: str
    files: tuple[FileReport, ...]
    total_bytes: int
    quantizations: tuple[str, ...]


class Engine:
    """Owns one HubClient (one connection pool) for the duration of a run.

    ```python
    async with Engine(load_config()) as engine:
        hits = await engine.search("model", "llama", limit=5)
    ```
    """

    def __init__(self, config: EngineConfig, on_event: EventSink = discard) -> None:
        self.config = config
        self.on_event = on_event
        self.client = HubClient(config, on_event)
        self.api = HubApi(self.client)

    async def __aenter__(self) -> Engine:
        await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def search(
        self,
        repo_type: str,
        query: str,
        *,
        limit: int = 10,
        author: str | None = None,
        task: str | None = None,
        sort: str | None = None,
    ) -> list[RepoSummary]:
        """Search the Hub; raises UsageError for a bad limit, sort key, or --task on spaces."""
        if limit <= 0:
            raise UsageError(f"--limit must be a positive number, got {limit}")
        if task and repo_type == "space":
            raise UsageError("--task filters models and datasets, not spaces")
        if sort is not None and sort not in SORT_KEYS:
            raise UsageError(f"unknown sort key '{sort}' (expected downloads, likes or updated)")
        return await self.api.search(
            repo_type, query, limit=limit, author=author, task=task, sort=SORT_KEYS.get(sort or "")
        )

    async def info(self, ref: RepoRef, revision: str | None = None) -> InfoResult:
        """Repo metadata plus a per-file size, LFS and safety report."""
        from engine._select import available_quantizations, safety_of

        if revision is not None:
            validate_revision(revision)
        info = (
            self._cached_info(ref, revision)
            if self.config.offline
            else await self.api.repo_info(ref, revision)
        )
        reports = []
        for f in with_scan_verdicts(info.files, info.raw):
            safety = safety_of(f.path, f.security_status)
            reports.append(FileReport(f.path, f.size, f.is_lfs, safety.safe, safety.reason))
        quants = tuple(available_quantizations([f.path for f in info.files]))
        return InfoResult(info, ref.repo_type, tuple(reports), sum(f.size for f in info.files), quants)

    def _cached_info(self, ref: RepoRef, revision: str | None) -> RepoInfo:
        """Offline: what the HF cache knows of `ref` (commit and files), without a request."""
        from engine._cache import RepoCache

        commit, files = RepoCache(self.config.hub_cache, ref).cached_files(revision or "main", sizes=True)
        return RepoInfo(
            id=ref.repo_id,
            sha=commit,
            author=ref.repo_id.split("/")[0],
            private=False,
            gated=False,
            license=None,
            task=None,
            tags=(),
            downloads=0,
            likes=0,
            last_modified=None,
            files=tuple(files),
        )

    async def pull(self, ref: RepoRef, options: PullOptions) -> PullResult:
        """Download a snapshot into the HF cache or a folder; see engine._pull."""
        from engine._pull import pull

        return await pull(self, ref, options)

    async def push(self, ref: RepoRef, folder: Path, options: PushOptions) -> PushResult:
        """Upload what changed in `folder`; see engine._push."""
        from engine._push import push

        return await push(self, ref, folder, options)
