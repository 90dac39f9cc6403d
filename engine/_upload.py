"""The write half of the Hub protocol (hub-protocol.md §8): preupload, LFS batch, object
transfers (basic PUT and multipart), verify, and the NDJSON commit.

Each function is one protocol step on top of HubClient, which owns retries, backoff,
Retry-After and the rule that the token only goes to the endpoint's origin. Pre-signed upload
URLs are always sent with `auth=False`: they authenticate themselves.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import anyio

from engine._api import quote_rev
from engine._errors import ProtocolError, first_error
from engine._events import BytesMoved, EventSink, FileFinished, FileStarted, discard
from engine._hub import Ctx, FileSlice, HubClient, HubResponse
from engine._models import RepoRef

PREUPLOAD_BATCH = 256  # what the official client sends per call (§8.2)
LFS_BATCH = 256  # git-lfs batch API limit used by the Hub (§8.4)
SAMPLE_BYTES = 512
LFS_JSON = "application/vnd.git-lfs+json"
_LFS_HEADERS = {"Accept": LFS_JSON, "Content-Type": LFS_JSON}  # send(json=...) keeps this type

UploadMode = Literal["regular", "lfs"]


class Preupload(NamedTuple):
    """The server's verdict on one path: how to send it and whether to skip it."""

    mode: UploadMode
    should_ignore: bool


class LfsAction(NamedTuple):
    href: str
    header: Mapping[str, str]


class LfsObject(NamedTuple):
    """One LFS batch answer: no `upload` action means the server already stores the object."""

    oid: str
    size: int
    upload: LfsAction | None
    verify: LfsAction | None


class CommitResult(NamedTuple):
    oid: str
    url: str
    pr_url: str | None
    pr_revision: str | None = None  # `refs/pr/N` when the commit opened a pull request


class AddFile(NamedTuple):
    """A commit operation adding or replacing `path`.

    Regular files carry `data` inline; LFS files carry only their sha256 (already uploaded).
    """

    path: str
    size: int
    sha256: str | None = None
    data: bytes | None = None

    @property
    def is_lfs(self) -> bool:
        return self.data is None


def read_sample(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(SAMPLE_BYTES)


def _api(ref: RepoRef, tail: str) -> str:
    return f"/api/{ref.api_collection}/{ref.repo_id}/{tail}"


def _pr_params(create_pr: bool) -> dict[str, str] | None:
    return {"create_pr": "1"} if create_pr else None


_PR_URL = re.compile(r".*/discussions/(\d+)")


def pr_revision(pr_url: str) -> str | None:
    """`refs/pr/N` for a pull request URL `…/discussions/N` (§8.5), or None for any other URL."""
    # The same pattern as the official client's, so both read a server's answer alike.
    match = _PR_URL.fullmatch(pr_url)
    return f"refs/pr/{match[1]}" if match else None


async def create_repo(client: HubClient, ref: RepoRef, *, private: bool, sdk: str = "gradio") -> bool:
    """Create the repo (a Space with `sdk`); True if it was created, False if it already existed (409)."""
    namespace, name = ref.repo_id.split("/")
    body: dict[str, Any] = {
        "name": name,
        "organization": namespace,
        "type": ref.repo_type,
        "private": private,
        "visibility": "private" if private else "public",
    }
    if ref.repo_type == "space":
        body["sdk"] = sdk  # the Hub refuses a Space without one
    resp = await client.send(
        "POST",
        client.url("/api/repos/create"),
        ctx=Ctx(ref.repo_id),
        json=body,
        ok=lambda s: s < 400 or s == 409,
    )
    return resp.status != 409


async def create_branch(client: HubClient, ref: RepoRef, branch: str) -> None:
    """Create `branch` from the default branch's head (409 when it exists is fine)."""
    await client.send(
        "POST",
        client.url(_api(ref, f"branch/{quote_rev(branch)}")),
        ctx=Ctx(ref.repo_id, branch),
        json={},
        ok=lambda s: s < 400 or s == 409,
    )


async def preupload(
    client: HubClient,
    ref: RepoRef,
    revision: str,
    files: Sequence[tuple[str, int, bytes]],
    *,
    create_pr: bool = False,
    gitignore: str | None = None,
) -> dict[str, Preupload]:
    """Ask the server how to send `files` ((path, size, first 512 bytes)), PREUPLOAD_BATCH per call.

    `gitignore`: the text of the `.gitignore` this push commits, which the Hub then applies
    (`shouldIgnore`) instead of the copy it has, as the official client does.
    """
    url = client.url(_api(ref, f"preupload/{quote_rev(revision)}"))
    out: dict[str, Preupload] = {}
    for i in range(0, len(files), PREUPLOAD_BATCH):
        batch = files[i : i + PREUPLOAD_BATCH]
        body: dict[str, Any] = {
            "files": [
                {"path": p, "size": size, "sample": base64.b64encode(sample).decode()}
                for p, size, sample in batch
            ]
        }
        if gitignore is not None:
            body["gitIgnore"] = gitignore
        resp = await client.send(
            "POST", url, ctx=Ctx(ref.repo_id, revision), params=_pr_params(create_pr), json=body
        )
        data = resp.json()
        for item in data.get("files", []) if isinstance(data, dict) else []:
            mode = item.get("uploadMode")
            if mode not in ("regular", "lfs"):
                raise ProtocolError(f"preupload answered an unknown upload mode {mode!r}", url=url)
            out[str(item["path"])] = Preupload(mode, bool(item.get("shouldIgnore")))
    # Empty files are always regular: S3 cannot store an empty LFS object (§8.2).
    for path, size, _ in files:
        if size == 0 and path in out:
            out[path] = Preupload("regular", out[path].should_ignore)
    return out


def _action(raw: Any) -> LfsAction | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("href"), str):
        return None
    header = raw.get("header") or {}
    return LfsAction(raw["href"], {str(k): str(v) for k, v in header.items()})


async def lfs_batch(
    client: HubClient,
    ref: RepoRef,
    revision: str,
    objects: Sequence[tuple[str, int]],
    *,
    create_pr: bool = False,
) -> list[LfsObject]:
    """Announce LFS objects ((sha256, size)); LFS_BATCH per call. Per-object errors raise."""
    url = client.url(f"/{ref.url_prefix}{ref.repo_id}.git/info/lfs/objects/batch")
    out: list[LfsObject] = []
    for i in range(0, len(objects), LFS_BATCH):
        body: dict[str, Any] = {
            "operation": "upload",
            "transfers": ["basic", "multipart"],
            "objects": [{"oid": oid, "size": size} for oid, size in objects[i : i + LFS_BATCH]],
            "hash_algo": "sha256",
        }
        if not create_pr:
            body["ref"] = {"name": revision}
        resp = await client.send(
            "POST",
            url,
            ctx=Ctx(ref.repo_id, revision),
            headers=_LFS_HEADERS,
            json=body,
        )
        data = resp.json()
        for obj in data.get("objects", []) if isinstance(data, dict) else []:
            if isinstance(obj.get("error"), dict):
                err = obj["error"]
                raise ProtocolError(
                    f"LFS batch refused object {obj.get('oid')}: {err.get('message')} ({err.get('code')})",
                    url=url,
                )
            actions = obj.get("actions") or {}
            out.append(
                LfsObject(
                    str(obj["oid"]),
                    int(obj["size"]),
                    _action(actions.get("upload")),
                    _action(actions.get("verify")),
                )
            )
    return out


def part_urls(header: Mapping[str, str], size: int) -> tuple[int, list[str]]:
    """Chunk size and the part URLs in part order, checked against `size` (§8.4 multipart)."""
    chunk = int(header["chunk_size"])
    keys = sorted((k for k in header if k.isdigit()), key=int)
    if chunk <= 0 or len(keys) != math.ceil(size / chunk):
        raise ProtocolError(f"multipart answer has {len(keys)} parts of {chunk} bytes for {size} bytes")
    return chunk, [header[k] for k in keys]


async def upload_object(
    client: HubClient,
    obj: LfsObject,
    path: Path,
    *,
    rel: str,
    part_limiter: anyio.CapacityLimiter,
    on_event: EventSink = discard,
) -> int:
    """Send one LFS object the server asked for, then verify it; returns the bytes sent.

    Multipart parts go out in parallel under `part_limiter`, each retried on its own by the
    HTTP core; a whole-object PUT is used when the server offers no `chunk_size`.
    """
    assert obj.upload is not None
    on_event(FileStarted(rel, obj.size))
    header = obj.upload.header
    if "chunk_size" in header:
        sent = await _multipart(client, obj, path, rel=rel, limiter=part_limiter, on_event=on_event)
    else:
        async with part_limiter:
            await _put(client, obj.upload.href, path, 0, obj.size)
        on_event(BytesMoved(rel, obj.size))
        sent = obj.size
    if obj.verify is not None:
        await client.send(
            "POST",
            obj.verify.href,
            headers=_LFS_HEADERS,
            json={"oid": obj.oid, "size": obj.size},
        )
    on_event(FileFinished(rel))
    return sent


async def _put(client: HubClient, url: str, path: Path, offset: int, length: int) -> HubResponse:
    """PUT `length` bytes of `path` from `offset`, streamed from disk afresh for each attempt."""
    return await client.send(
        "PUT", url, body=FileSlice(path, offset, length), auth=False, ok=lambda s: s < 300
    )


async def _multipart(
    client: HubClient,
    obj: LfsObject,
    path: Path,
    *,
    rel: str,
    limiter: anyio.CapacityLimiter,
    on_event: EventSink,
) -> int:
    assert obj.upload is not None
    chunk, urls = part_urls(obj.upload.header, obj.size)
    etags: dict[int, str] = {}

    async def put_part(number: int, url: str) -> None:
        offset = (number - 1) * chunk
        length = min(chunk, obj.size - offset)
        async with limiter:
            resp = await _put(client, url, path, offset, length)
        etag = resp.headers.get("etag")
        if not etag:
            raise ProtocolError(f"part {number} of {rel} was stored without an ETag", url=url.split("?")[0])
        etags[number] = etag
        on_event(BytesMoved(rel, length))

    try:
        async with anyio.create_task_group() as tg:
            for number, url in enumerate(urls, start=1):
                tg.start_soon(put_part, number, url)
    except BaseExceptionGroup as group:  # the caller wants the part's error, not a group of them
        raise first_error(group) from None
    await client.send(
        "POST",
        obj.upload.href,
        headers=_LFS_HEADERS,
        json={"oid": obj.oid, "parts": [{"partNumber": n, "etag": etags[n]} for n in sorted(etags)]},
        auth=False,
    )
    return obj.size


def commit_payload(
    summary: str,
    description: str,
    adds: Iterable[AddFile],
    deletes: Iterable[str],
    *,
    parent: str | None = None,
) -> bytes:
    """The NDJSON commit body (§8.5): header line first, then one line per operation."""
    header: dict[str, Any] = {"summary": summary, "description": description}
    if parent:
        header["parentCommit"] = parent
    lines = [{"key": "header", "value": header}]
    for op in adds:
        if op.data is not None:
            value: dict[str, Any] = {
                "content": base64.b64encode(op.data).decode(),
                "path": op.path,
                "encoding": "base64",
            }
            lines.append({"key": "file", "value": value})
        else:
            lines.append(
                {
                    "key": "lfsFile",
                    "value": {"path": op.path, "algo": "sha256", "oid": op.sha256, "size": op.size},
                }
            )
    lines.extend({"key": "deletedFile", "value": {"path": p}} for p in deletes)
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


async def commit(
    client: HubClient,
    ref: RepoRef,
    revision: str,
    payload: bytes,
    *,
    create_pr: bool = False,
) -> CommitResult:
    """POST one NDJSON commit: it lands whole or not at all."""
    url = client.url(_api(ref, f"commit/{quote_rev(revision)}"))
    resp = await client.send(
        "POST",
        url,
        ctx=Ctx(ref.repo_id, revision),
        params=_pr_params(create_pr),
        headers={"Content-Type": "application/x-ndjson"},
        body=payload,
    )
    data = resp.json()
    if not isinstance(data, dict) or not isinstance(data.get("commitOid"), str):
        raise ProtocolError("commit answer without a commitOid", url=url)
    pr = data.get("pullRequestUrl")
    pr_url = pr if isinstance(pr, str) else None
    pr_rev = pr_revision(pr_url) if pr_url else None
    if create_pr and pr_rev is None:
        # The official client fails here too: without the PR's number the user cannot find the
        # pull request, and the next part of a split push would open another one.
        raise ProtocolError(f"commit answer without a pull request URL (got {pr!r})", url=url)
    return CommitResult(data["commitOid"], str(data.get("commitUrl") or ""), pr_url, pr_rev)
