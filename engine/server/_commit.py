"""`POST /api/{type}s/{repo}/commit/{rev}`: the NDJSON commit (hub-protocol §8.5).

A commit is validated completely before anything on disk changes: the new tree is planned in
memory, new contents are staged in the server's temp area, and only then applied in one
synchronous step on the event loop (renames and unlinks, no awaits), so no reader ever sees
half a commit and a refused commit leaves nothing behind.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from aiohttp import web

from engine._models import RepoRef
from engine.server._context import Ctx
from engine.server._discussions import add_record, next_number
from engine.server._hashing import FileDigest
from engine.server._http import HubHTTPError, json_response, truthy
from engine.server._read import revision_snapshot
from engine.server._rules import (
    DEFAULT_GITATTRIBUTES,
    LFS_ATTRS,
    SAMPLE_BYTES,
    git_blob_sha1,
    is_lfs,
    valid_repo_path,
)
from engine.server._store import Snapshot
from engine.server._write import copy_tree


@dataclass(slots=True)
class _Plan:
    """The tree after the commit: path -> where its content comes from."""

    keep: dict[str, str]  # path -> file of the base snapshot
    data: dict[str, bytes] = field(default_factory=dict)  # inline contents
    blobs: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # path -> (blob file, sha256, size)

    def paths(self) -> set[str]:
        return set(self.keep) | set(self.data) | set(self.blobs)

    def drop(self, path: str) -> None:
        for table in (self.keep, self.data, self.blobs):
            table.pop(path, None)


def _parse_ndjson(raw: bytes) -> tuple[dict[str, object], list[tuple[str, dict[str, object]]]]:
    lines = []
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            key, value = item["key"], item["value"]
        except (ValueError, KeyError, TypeError):
            raise HubHTTPError(
                400, f"line {n} of the commit payload is not a {{key, value}} JSON object"
            ) from None
        if not isinstance(key, str) or not isinstance(value, dict):
            raise HubHTTPError(400, f"line {n} of the commit payload is malformed")
        lines.append((key, value))
    if not lines or lines[0][0] != "header":
        raise HubHTTPError(400, "the first line of the commit payload must be the header")
    return lines[0][1], lines[1:]


def _path_of(value: dict[str, object]) -> str:
    path = value.get("path")
    if not isinstance(path, str) or not valid_repo_path(path.strip("/")):
        raise HubHTTPError(400, f"invalid path in commit: {path!r}")
    return path.strip("/")


def _plan_ops(ctx: Ctx, base: Snapshot, ops: list[tuple[str, dict[str, object]]]) -> _Plan:
    plan = _Plan(keep={p: e.abs_path for p, e in base.files.items()})
    store = ctx.svc.store
    for key, value in ops:
        if key == "file":
            path = _path_of(value)
            content = value.get("content")
            if not isinstance(content, str):
                raise HubHTTPError(400, f"missing content for {path}")
            try:
                data = (
                    base64.b64decode(content, validate=True)
                    if value.get("encoding", "base64") == "base64"
                    else content.encode()
                )
            except (binascii.Error, ValueError):
                raise HubHTTPError(400, f"invalid base64 content for {path}") from None
            plan.drop(path)
            plan.data[path] = data
        elif key == "lfsFile":
            path = _path_of(value)
            oid, size = value.get("oid"), value.get("size")
            found = store.locate_blob(oid) if isinstance(oid, str) else None
            if found is None or (isinstance(size, int) and size != found[1]):
                raise HubHTTPError(400, f"LFS object {oid} for {path} was not uploaded (or has another size)")
            assert isinstance(oid, str)
            plan.drop(path)
            plan.blobs[path] = (found[0], oid, found[1])
        elif key == "deletedFile":
            path = _path_of(value)
            if path not in plan.paths():
                raise HubHTTPError(
                    404, f"A file with this name doesn't exist: {path}", code="EntryNotFound",
                    headers={"X-Repo-Commit": base.commit},
                )  # fmt: skip
            plan.drop(path)
        elif key == "deletedFolder":
            folder = _path_of(value) + "/"
            inside = [p for p in plan.paths() if p.startswith(folder)]
            if not inside:
                raise HubHTTPError(
                    404, f"A folder with this name doesn't exist: {folder}", code="EntryNotFound"
                )
            for p in inside:
                plan.drop(p)
        else:
            raise HubHTTPError(400, f"unsupported commit operation {key!r}")
    paths = plan.paths()
    for p in paths:
        parts = p.split("/")
        if any("/".join(parts[:i]) in paths for i in range(1, len(parts))):
            raise HubHTTPError(400, f"{p} would sit under a file of the same commit")
    _mark_lfs_paths(ctx, plan)
    return plan


def _mark_lfs_paths(ctx: Ctx, plan: _Plan) -> None:
    """Like the Hub, add a `.gitattributes` rule for LFS uploads our rules would serve as regular."""
    if ".gitattributes" in plan.data:
        attrs: str | None = plan.data[".gitattributes"].decode(errors="replace")
    elif ".gitattributes" in plan.keep:
        attrs = Path(plan.keep[".gitattributes"]).read_text(errors="replace")
    else:
        attrs = None
    extra = []
    for path, (blob, _, size) in sorted(plan.blobs.items()):
        with open(blob, "rb") as f:
            sample = f.read(SAMPLE_BYTES)
        if not is_lfs(path, size, sample, attrs, size_threshold=ctx.svc.config.lfs_size_threshold_bytes):
            extra.append(f"{path.replace(' ', '?')} {LFS_ATTRS}\n")
    if extra:
        text = (
            DEFAULT_GITATTRIBUTES
            if attrs is None
            else attrs
            if attrs.endswith("\n") or not attrs
            else attrs + "\n"
        )
        plan.drop(".gitattributes")
        plan.data[".gitattributes"] = (text + "".join(extra)).encode()


def _stage(ctx: Ctx, plan: _Plan) -> dict[str, Path]:
    """Write every new content next to the repos (same filesystem) so applying is just renames."""
    staged: dict[str, Path] = {}
    store = ctx.svc.store
    try:
        for path, data in plan.data.items():
            tmp = staged[path] = store.new_tmp("commit-")
            tmp.write_bytes(data)
        for path, (blob, _, _) in plan.blobs.items():
            tmp = staged[path] = store.new_tmp("commit-")
            try:
                os.link(blob, tmp)
            except OSError:
                shutil.copyfile(blob, tmp)
    except BaseException:
        _discard(staged)
        raise
    return staged


def _discard(staged: dict[str, Path]) -> None:
    for tmp in staged.values():
        tmp.unlink(missing_ok=True)


def _apply_in_place(top: Path, base: Snapshot, plan: _Plan, staged: dict[str, Path]) -> None:
    """Turn the branch folder `top` (holding `base`) into the planned tree. Synchronous on purpose."""
    for path in sorted(set(base.files) - set(plan.keep), key=lambda p: -p.count("/")):
        (top / path).unlink(missing_ok=True)
        parent = (top / path).parent
        while parent != top:
            with contextlib.suppress(OSError):
                parent.rmdir()  # only succeeds once the folder is empty
            parent = parent.parent
    for path, tmp in staged.items():
        dest = top / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)


def _record_digests(ctx: Ctx, top: Path, plan: _Plan) -> None:
    """We know the new files' digests already; spare the next snapshot from reading them again."""
    hashes = ctx.svc.store.hashes
    for path, data in plan.data.items():
        st = (top / path).stat()
        digest = FileDigest(
            st.st_size, st.st_mtime_ns, st.st_ino, b"\x00" in data[:SAMPLE_BYTES],
            git_blob_sha1(data), hashlib.sha256(data).hexdigest(),
        )  # fmt: skip
        hashes.record(str(top / path), digest, st.st_dev)


async def commit(ctx: Ctx, repo: RepoRef, rev: str) -> web.Response:
    ctx.require_repo(repo)
    token = ctx.require_writer(repo.repo_id.split("/")[0])
    store = ctx.svc.store
    header, ops = _parse_ndjson(await ctx.request.read())
    create_pr = truthy(ctx.query.get("create_pr"))
    # One commit at a time per repo; the parentCommit check and the apply must not interleave.
    async with ctx.svc.commit_lock(repo):
        branch = rev.removeprefix("refs/heads/")
        if branch not in store.branches(repo):
            raise HubHTTPError(404, f"Invalid rev id: {rev}", code="RevisionNotFound")
        head = await revision_snapshot(ctx, repo, branch)
        parent = header.get("parentCommit")
        base = head
        if isinstance(parent, str) and parent:
            if create_pr:
                base = await revision_snapshot(ctx, repo, parent)
            elif not head.commit.startswith(parent.lower()):
                raise HubHTTPError(
                    412, "A commit has happened since. Please refresh and try again.",
                    headers={"X-Repo-Commit": head.commit},
                )  # fmt: skip
        plan = _plan_ops(ctx, base, ops)
        staged = await anyio.to_thread.run_sync(_stage, ctx, plan)
        try:
            if create_pr:
                number = next_number(store, repo)
                branch = f"refs/pr/{number}"
                top = store.branch_dir(repo, branch)
                staging = store.new_tmp("pr-")
                kept = Snapshot(base.repo, base.branch, base.commit,
                                {p: e for p, e in base.files.items() if p in plan.keep}, base.last_modified)  # fmt: skip
                for path, tmp in staged.items():
                    (staging / path).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp, staging / path)
                copy_tree(kept, top, staging)
            else:
                top = store.branch_dir(repo, branch)
                _apply_in_place(top, base, plan, staged)
        finally:
            _discard(staged)
        store.invalidate(repo)
        _record_digests(ctx, top, plan)
        snap = await store.snapshot(repo, branch)
        assert snap is not None
        summary, description = header.get("summary"), header.get("description")
        title = summary if isinstance(summary, str) else ""
        message = description if isinstance(description, str) else ""
        store.record_commit(
            repo,
            {"id": snap.commit, "branch": branch, "title": title, "message": message, "date": time.time(),
             "author": token.user, "parents": [base.commit]},
        )  # fmt: skip
        if create_pr:
            # Like the Hub, a PR opened by a commit is an (open) discussion too.
            add_record(store, repo, number, title=title, description=message, author=token.user,
                       pull_request=True, status="open")  # fmt: skip
    url = ctx.repo_url(repo)
    body: dict[str, object] = {
        "success": True,
        "commitOid": snap.commit,
        "commitUrl": f"{url}/commit/{snap.commit}",
        "hookOutput": "",
    }
    if create_pr:
        body["pullRequestUrl"] = f"{url}/discussions/{branch.rsplit('/', 1)[1]}"
    return json_response(body)
