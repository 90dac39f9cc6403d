"""One method per Hub read endpoint, parsing answers into value types (no HTTP details here)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote

from engine._errors import ProtocolError, UsageError
from engine._hub import Ctx, HubClient
from engine._models import RemoteFile, RepoRef

MAX_TREE_PAGES = 100_000


def quote_rev(revision: str) -> str:
    """A revision as one path segment: `refs/pr/1` -> `refs%2Fpr%2F1` (hub-protocol.md §1.4)."""
    return quote(revision, safe="")


# What `git check-ref-format` refuses in a branch or tag name: control characters and space,
# ~ ^ : ? * [ \, "..", "@{", an empty part ("//", a leading or trailing "/"), a part that starts
# with "." or ends with ".lock", a trailing ".", and "@" alone. The Hub names refs as git does, so
# such a revision can only be a typo, better said here than as "revision not found".
_NOT_A_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|^/|/$|\.$|(?:^|/)\.|\.lock(?:/|$)|^@$")


def validate_revision(revision: str) -> str:
    """Return `revision` (a branch, tag, `refs/pr/N` or commit sha) if git could name a ref so.

    Raises UsageError for an empty revision, whitespace anywhere in it, or what git refuses.
    """
    if not revision or _NOT_A_REF.search(revision) or any(c.isspace() for c in revision):
        shown = revision if revision.isprintable() else revision.encode("unicode_escape").decode()
        raise UsageError(f"invalid revision '{shown}': not a branch, tag or commit name git allows")
    return revision


class RepoSummary(NamedTuple):
    """One row of a search listing."""

    id: str
    task: str | None
    downloads: int
    likes: int
    last_modified: str | None
    private: bool = False

    @classmethod
    def parse(cls, item: Mapping[str, Any]) -> RepoSummary:
        if not isinstance(item.get("id"), str):
            raise ProtocolError("listing item without an 'id'")
        task = item.get("pipeline_tag")
        if task is None:
            cats = [
                t.split(":", 1)[1] for t in item.get("tags") or [] if str(t).startswith("task_categories:")
            ]
            task = cats[0] if cats else item.get("sdk")
        return cls(
            id=item["id"],
            task=task if isinstance(task, str) else None,
            downloads=int(item.get("downloads") or 0),
            likes=int(item.get("likes") or 0),
            last_modified=item.get("lastModified") or item.get("createdAt"),
            private=bool(item.get("private", False)),
        )


@dataclass(frozen=True, slots=True)
class RepoInfo:
    """Repo metadata at one revision (the fields batuta shows; `raw` keeps the rest)."""

    id: str
    sha: str
    author: str | None
    private: bool
    gated: str | bool
    license: str | None
    task: str | None
    tags: tuple[str, ...]
    downloads: int
    likes: int
    last_modified: str | None
    files: tuple[RemoteFile, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> RepoInfo:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            raise ProtocolError("repo info without an 'id'")
        card = data.get("cardData") or {}
        tags = tuple(str(t) for t in data.get("tags") or [])
        license_ = card.get("license") if isinstance(card, Mapping) else None
        if not license_:
            license_ = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
        task = data.get("pipeline_tag")
        if not task:
            task = next((t.split(":", 1)[1] for t in tags if t.startswith("task_categories:")), None)
        files = tuple(parse_sibling(s) for s in data.get("siblings") or [])
        return cls(
            id=data["id"],
            sha=_hex(data.get("sha") or "", 40, "commit"),
            author=data.get("author"),
            private=bool(data.get("private", False)),
            gated=data.get("gated", False),
            license=str(license_) if license_ else None,
            task=str(task) if task else None,
            tags=tags,
            downloads=int(data.get("downloads") or 0),
            likes=int(data.get("likes") or 0),
            last_modified=data.get("lastModified"),
            files=files,
            raw=data,
        )


_LOWER_HEX = re.compile("[0-9a-f]*")


def _hex(value: object, length: int, what: str) -> str:
    """A commit id or digest from the server, checked: it names folders and files in the cache."""
    text = str(value)
    # A regex, not a per-character loop: this runs for every file of a listing (twice with LFS).
    if text and not (len(text) == length and _LOWER_HEX.fullmatch(text)):
        raise ProtocolError(f"the server sent a malformed {what} id {text[:80]!r}")
    return text


def parse_sibling(item: Mapping[str, Any]) -> RemoteFile:
    lfs = item.get("lfs") or None
    return RemoteFile(
        path=str(item["rfilename"]),
        size=int(item.get("size") or (lfs or {}).get("size") or 0),
        blob_id=_hex(item.get("blobId") or "", 40, "blob"),
        lfs_sha256=_hex(lfs["sha256"], 64, "sha256") if lfs else None,
    )


def parse_tree_entry(item: Mapping[str, Any]) -> RemoteFile | None:
    """A tree entry as a RemoteFile; None for directories. Unused fields (xetHash, lastCommit) are ignored."""
    if item.get("type") != "file":
        return None
    lfs = item.get("lfs") or None
    sec = item.get("securityFileStatus")
    status = sec.get("status") if isinstance(sec, Mapping) else None
    return RemoteFile(
        path=str(item["path"]),
        size=int(item.get("size") or 0),
        blob_id=_hex(item.get("oid") or "", 40, "blob"),
        lfs_sha256=_hex(lfs["oid"], 64, "sha256") if lfs else None,
        security_status=str(status) if status else None,
    )


def hub_scan_verdicts(raw: Any) -> dict[str, str]:
    """Per-file verdicts from `securityRepoStatus` when the Hub sent one (its shape is not fixed)."""
    status = raw.get("securityRepoStatus") if isinstance(raw, Mapping) else None
    out: dict[str, str] = {}
    if isinstance(status, Mapping):
        for item in status.get("filesWithIssues") or []:
            if isinstance(item, Mapping) and isinstance(item.get("path"), str):
                out[item["path"]] = str(item.get("level") or "unsafe")
    return out


def with_scan_verdicts(files: Iterable[RemoteFile], raw: Any) -> list[RemoteFile]:
    """`files` with the Hub scan's verdicts (from the info document `raw`) as their security status."""
    scan = hub_scan_verdicts(raw)
    return [f._replace(security_status=scan.get(f.path, f.security_status)) for f in files]


def _next_link(link: str | None) -> str | None:
    if not link:
        return None
    for part in link.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            start, end = part.find("<"), part.find(">")
            if start != -1 and end > start:
                return part[start + 1 : end]
    return None


@contextlib.contextmanager
def _hub_shaped(what: str) -> Iterator[None]:
    """Turn a JSON answer of the wrong shape (a string where a list belongs, ...) into ProtocolError."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ProtocolError(
            f"{what}: the endpoint does not answer like a Hub ({type(exc).__name__})"
        ) from None


class HubApi:
    """Typed read calls on top of HubClient."""

    def __init__(self, client: HubClient) -> None:
        self.client = client

    async def _pages(self, url: str, params: Any, ctx: Ctx) -> AsyncIterator[list[Any]]:
        next_url: str | None = url
        for _ in range(MAX_TREE_PAGES):
            if next_url is None:
                return
            resp = await self.client.send(
                "GET", next_url, ctx=ctx, params=params, timeout_s=self.client.config.metadata_timeout_s
            )
            data = resp.json()
            if not isinstance(data, list):
                raise ProtocolError(f"expected a JSON list from {next_url.split('?')[0]}")
            yield data
            next_url, params = _next_link(resp.headers.get("link")), None

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
        params: list[tuple[str, str]] = [("limit", str(limit))]
        if query:
            params.append(("search", query))
        if author:
            params.append(("author", author))
        if task:
            params.append(
                ("pipeline_tag", task) if repo_type == "model" else ("filter", f"task_categories:{task}")
            )
        if sort:
            params += [("sort", sort), ("direction", "-1")]
        out: list[RepoSummary] = []
        async for page in self._pages(self.client.url(f"/api/{repo_type}s"), params, Ctx()):
            with _hub_shaped(f"search of {repo_type}s"):
                out.extend(RepoSummary.parse(item) for item in page)
            if len(out) >= limit or not page:
                break
        return out[:limit]

    async def repo_info(
        self,
        ref: RepoRef,
        revision: str | None = None,
        *,
        blobs: bool = True,
        answered_locally: Callable[[], bool] | None = None,
    ) -> RepoInfo:
        """The repo's metadata at `revision`; `answered_locally` as for `HubClient.send`."""
        path = f"/api/{ref.api_collection}/{ref.repo_id}"
        if revision is not None:
            path += f"/revision/{quote_rev(validate_revision(revision))}"
        params = {"blobs": "true"} if blobs else {}
        if ref.repo_type == "model":
            # The Hub then adds `securityRepoStatus`, its own malware/pickle scan of the files.
            params["securityStatus"] = "true"
        data = await self.client.get_json(
            path,
            ctx=Ctx(ref.repo_id, revision or "main"),
            params=params or None,
            answered_locally=answered_locally,
        )
        with _hub_shaped(f"info of {ref.repo_id}"):
            return RepoInfo.parse(data)

    async def list_tree(self, ref: RepoRef, revision: str) -> list[RemoteFile]:
        url = self.client.url(f"/api/{ref.api_collection}/{ref.repo_id}/tree/{quote_rev(revision)}")
        params = {"recursive": "true", "expand": "false"}
        files: list[RemoteFile] = []
        async for page in self._pages(url, params, Ctx(ref.repo_id, revision)):
            with _hub_shaped(f"file list of {ref.repo_id}"):
                files.extend(f for f in (parse_tree_entry(item) for item in page) if f is not None)
        return files

    def resolve_url(self, ref: RepoRef, revision: str, path: str) -> str:
        return self.client.url(f"/{ref.url_prefix}{ref.repo_id}/resolve/{quote_rev(revision)}/{quote(path)}")
