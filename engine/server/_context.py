"""Server configuration, the services every route uses, and the per-request context."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from aiohttp import web
from multidict import MultiMapping

from engine._models import RepoRef
from engine.server._auth import TokenInfo
from engine.server._faults import FaultState, RateLimiter, Stats
from engine.server._http import HubHTTPError, Signer, host_origin, other_loopback
from engine.server._rules import LFS_SIZE_THRESHOLD_BYTES
from engine.server._store import Store

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything `batuta hf serve` and LocalHub can tune. Defaults mimic the Hub."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 0
    blob_port: int = 0  # the CDN-like listener for LFS content and uploads
    testing: bool = False  # admin routes under /_batuta/ (also env BATUTA_SERVE_TESTING=1)
    signed_url_ttl_s: float = 3600.0
    list_page_size: int = 100  # max items per page of /api/models|datasets|spaces
    tree_page_size: int = 1000
    tree_expand_page_size: int = 50
    lfs_size_threshold_bytes: int = LFS_SIZE_THRESHOLD_BYTES
    multipart_threshold_bytes: int = 20 * MiB  # LFS uploads this big get multipart URLs
    multipart_chunk_bytes: int = 16 * MiB
    rate_limit_api: int = 10**9  # requests per window and client
    rate_limit_resolvers: int = 10**9
    rate_limit_window_s: int = 300
    thread_hash_bytes: int = 4 * MiB  # files this big are hashed in a worker thread
    snapshot_ttl_s: float = 1.0  # how long an in-place edit (same name, same folder) may go unseen
    request_log_size: int = 10_000
    max_inline_commit_bytes: int = 2 * 1024 * MiB


@dataclass(slots=True)
class Services:
    """The shared state behind both listeners."""

    config: ServerConfig
    store: Store
    faults: FaultState
    stats: Stats
    ratelimit: RateLimiter
    signer: Signer
    testing: bool
    blob_port: int = 0
    commit_locks: dict[RepoRef, anyio.Lock] = field(default_factory=dict)

    def commit_lock(self, repo: RepoRef) -> anyio.Lock:
        """The lock that serialises writes to `repo`'s refs (commits, tags, new PR numbers)."""
        return self.commit_locks.setdefault(repo, anyio.Lock())


def visible_to(meta: Mapping[str, object], token: TokenInfo | None, repo: RepoRef) -> bool:
    """Whether a caller with `token` (None: anonymous) may see the repo with this metadata."""
    return not meta.get("private") or (token is not None and token.reaches(repo.repo_id.split("/")[0]))


def may_read(store: Store, token: TokenInfo | None, repo: RepoRef) -> bool:
    """Whether `repo` exists for a caller with `token`: the test `Ctx.require_repo` makes."""
    return store.exists(repo) and visible_to(store.meta(repo), token, repo)


@dataclass(slots=True)
class Ctx:
    """One API request: who asks, what for, and helpers to refuse it the Hub's way."""

    svc: Services
    request: web.Request
    kind: str
    target: str
    token: TokenInfo | None

    @property
    def query(self) -> MultiMapping[str]:
        return self.request.query

    @property
    def origin(self) -> str:
        return host_origin(self.request)

    def blob_origin(self) -> str:
        host = self.request.url.host or self.svc.config.host
        return f"{self.request.scheme}://{other_loopback(host)}:{self.svc.blob_port}"

    def repo_url(self, repo: RepoRef) -> str:
        return f"{self.origin}/{repo.url_prefix}{repo.repo_id}"

    def require_repo(self, repo: RepoRef) -> dict[str, object]:
        """The repo's metadata, or the Hub's answer for a repo this caller cannot see."""
        meta = self.svc.store.meta(repo) if self.svc.store.exists(repo) else None
        if meta is not None and visible_to(meta, self.token, repo):
            return meta
        if self.token is None:
            # Anonymous: the Hub's 401 whether the repo is private or missing, so the answer says
            # nothing about which repos exist (hub-protocol §2.3).
            raise HubHTTPError(401, "Invalid username or password.", code="RepoNotFound")
        raise HubHTTPError(404, "Repository not found", code="RepoNotFound")

    def check_gated(self, repo: RepoRef, meta: dict[str, object]) -> None:
        """File content of a gated repo needs a token with gated access."""
        if meta.get("gated") in (None, False, "false", ""):
            return
        ns = repo.repo_id.split("/")[0]
        if self.token is None:
            raise HubHTTPError(
                401,
                f"Access to {repo.repo_type} {repo.repo_id} is restricted. You must have access to it "
                "and be authenticated to access it. Please log in.",
                code="GatedRepo",
                headers={"WWW-Authenticate": 'Bearer realm="Authentication required", charset="UTF-8"'},
            )
        if not self.token.may_download_gated(ns):
            raise HubHTTPError(
                403,
                f"Access to {repo.repo_type} {repo.repo_id} is restricted and you are not in the authorized "
                f"list. Visit {self.repo_url(repo)} to ask for access.",
                code="GatedRepo",
            )

    def require_writer(self, namespace: str) -> TokenInfo:
        if self.token is None:
            raise HubHTTPError(401, "You must be authenticated to write to the Hub (no token sent)")
        if not self.token.may_write(namespace):
            raise HubHTTPError(
                403, f"You don't have the rights to write to the namespace {namespace} with this token"
            )
        return self.token
