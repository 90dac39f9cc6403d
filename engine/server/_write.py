"""Write routes except the commit itself: repos, preupload, LFS batch/verify, branches, tags, account.

Every write needs a token whose role is `write` for the target namespace (401 without a
valid token, 403 with a read-only one). Hub-protocol §8 and §13 describe the shapes.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from engine._errors import UsageError
from engine._models import RepoRef
from engine._wildmatch import gitignored
from engine.server._context import Ctx
from engine.server._http import HubHTTPError, json_response
from engine.server._read import revision_snapshot
from engine.server._rules import DEFAULT_GITATTRIBUTES, is_lfs, mongo_id
from engine.server._store import MAIN, META_SUFFIX, TAG_PREFIX, Snapshot, Store, repo_ref

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
LFS_JSON = "application/vnd.git-lfs+json"


async def json_body(ctx: Ctx) -> dict[str, object]:
    try:
        data = await ctx.request.json()
    except ValueError:
        raise HubHTTPError(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HubHTTPError(400, "request body must be a JSON object")
    return data


def _namespace(repo: RepoRef) -> str:
    return repo.repo_id.split("/")[0]


def writable_repo(ctx: Ctx, repo: RepoRef) -> dict[str, object]:
    meta = ctx.require_repo(repo)
    ctx.require_writer(_namespace(repo))
    return meta


# ---- account ----------------------------------------------------------------------------------
async def whoami(ctx: Ctx) -> web.Response:
    if ctx.token is None:
        raise HubHTTPError(401, "Invalid credentials in Authorization header")
    t = ctx.token
    return json_response(
        {
            "type": "user",
            "id": mongo_id(f"user/{t.user}"),
            "name": t.user,
            "fullname": t.user,
            "isPro": False,
            "orgs": [{"type": "org", "name": n} for n in t.namespaces or ()],
            "auth": {"type": "access_token", "accessToken": {"displayName": "batuta", "role": t.role}},
        }
    )


async def validate_yaml(ctx: Ctx) -> web.Response:
    return json_response({})


# ---- repos ------------------------------------------------------------------------------------
def _repo_from_body(ctx: Ctx, body: Mapping[str, object]) -> RepoRef:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise HubHTTPError(400, "missing repo name")
    org = body.get("organization")
    if "/" in name:  # some clients send the full id as the name
        org, name = name.split("/", 1)
    if not isinstance(org, str) or not org:
        if ctx.token is None:
            raise HubHTTPError(401, "You must be authenticated to create a repo")
        org = ctx.token.user
    if name.endswith(META_SUFFIX):
        # The store keeps a repo's settings in `<name>.meta.json` beside its folder.
        raise HubHTTPError(400, f"invalid repo name {name!r}: it may not end with {META_SUFFIX!r}")
    try:
        return repo_ref(str(body.get("type") or "model"), f"{org}/{name}")
    except UsageError as exc:
        raise HubHTTPError(400, str(exc)) from None


async def create_repo(ctx: Ctx) -> web.Response:
    body = await json_body(ctx)
    repo = _repo_from_body(ctx, body)
    ctx.require_writer(_namespace(repo))
    store = ctx.svc.store
    url = ctx.repo_url(repo)
    existing = repo if store.exists(repo) else None
    # Ids are case-insensitive on the Hub: `acme/TINY` is the existing acme/tiny, not a new repo.
    if existing is None and (spelling := store.canonical_case(repo.repo_type, repo.repo_id)):
        existing = repo_ref(repo.repo_type, spelling)
    if existing is not None:
        return json_response(
            {"error": f"You already created this {repo.repo_type} repo", "url": ctx.repo_url(existing)},
            status=409,
        )
    private = bool(body.get("private")) or body.get("visibility") in ("private", "protected")
    meta: dict[str, object] = {"private": private, "createdAt": time.time()}
    if repo.repo_type == "space":
        meta["sdk"] = body.get("sdk") or "static"
    for key in ("license", "gated"):
        if key in body:
            meta[key] = body[key]
    store.write_meta(repo, meta)
    store.write_files(repo, {".gitattributes": DEFAULT_GITATTRIBUTES}, replace=False)
    snap = await store.snapshot(repo)
    assert snap is not None
    store.record_commit(
        repo,
        {"id": snap.commit, "branch": MAIN, "title": "initial commit", "message": "", "date": time.time(),
         "author": ctx.token.user if ctx.token else "", "parents": []},
    )  # fmt: skip
    return json_response(
        {"url": url, "name": repo.repo_id, "id": mongo_id(f"{repo.repo_type}/{repo.repo_id}")}
    )


async def delete_repo(ctx: Ctx) -> web.Response:
    repo = _repo_from_body(ctx, await json_body(ctx))
    writable_repo(ctx, repo)
    store = ctx.svc.store
    _remove_dir(store, store.repo_dir(repo))
    shutil.rmtree(store.branches_root(repo), ignore_errors=True)
    shutil.rmtree(store.tags_root(repo), ignore_errors=True)
    for path in (store.meta_file(repo), store.commits_file(repo), store.discussions_file(repo)):
        path.unlink(missing_ok=True)
    store.invalidate(repo)
    return web.Response(text="OK")


async def settings(ctx: Ctx, repo: RepoRef) -> web.Response:
    meta = writable_repo(ctx, repo)
    body = await json_body(ctx)
    if "private" in body:
        meta["private"] = bool(body["private"])
    if "visibility" in body:
        meta["private"] = body["visibility"] in ("private", "protected")
    if "gated" in body:
        meta["gated"] = body["gated"] if body["gated"] in ("auto", "manual") else False
    ctx.svc.store.write_meta(repo, meta)
    return json_response(meta)


# ---- preupload --------------------------------------------------------------------------------
def _read_text(snap: Snapshot, path: str) -> str | None:
    entry = snap.files.get(path)
    if entry is None:
        return None
    try:
        return Path(entry.abs_path).read_text(errors="replace")
    except OSError:
        return None


async def preupload(ctx: Ctx, repo: RepoRef, rev: str) -> web.Response:
    writable_repo(ctx, repo)
    snap = await revision_snapshot(ctx, repo, rev)
    body = await json_body(ctx)
    files = body.get("files")
    if not isinstance(files, list):
        raise HubHTTPError(400, "'files' must be a list")
    gitignore = body.get("gitIgnore")
    ignore_text = gitignore if isinstance(gitignore, str) else _read_text(snap, ".gitignore")
    attrs = body.get("gitAttributes")
    attributes = attrs if isinstance(attrs, str) else _read_text(snap, ".gitattributes")
    out = []
    for f in files:
        if not isinstance(f, dict) or not isinstance(f.get("path"), str):
            raise HubHTTPError(400, "each file needs a 'path'")
        path = f["path"]
        try:
            sample = base64.b64decode(str(f.get("sample", "")))
        except (binascii.Error, ValueError):
            raise HubHTTPError(400, f"invalid base64 sample for {path}") from None
        size = int(f.get("size", len(sample)))
        lfs = is_lfs(path, size, sample, attributes, size_threshold=ctx.svc.config.lfs_size_threshold_bytes)
        item: dict[str, object] = {"path": path, "uploadMode": "lfs" if lfs else "regular",
                                   "shouldIgnore": gitignored(path, ignore_text)}  # fmt: skip
        if (entry := snap.files.get(path)) is not None:
            item["oid"] = entry.etag
        out.append(item)
    return json_response({"files": out, "commitOid": snap.commit})


# ---- LFS batch and verify ---------------------------------------------------------------------
def _upload_actions(
    ctx: Ctx, repo: RepoRef, oid: str, size: int, transfers: list[str]
) -> tuple[dict[str, object], bool]:
    cfg, signer, blob = ctx.svc.config, ctx.svc.signer, ctx.blob_origin()
    verify = {
        "href": f"{ctx.origin}/{repo.url_prefix}{repo.repo_id}.git/info/lfs/objects/verify",
        "header": {},
    }
    if "multipart" in transfers and size >= cfg.multipart_threshold_bytes:
        upload_id, chunk = uuid.uuid4().hex, cfg.multipart_chunk_bytes
        params = {"size": str(size), "chunk": str(chunk)}
        header: dict[str, str] = {"chunk_size": str(chunk)}
        for part in range(1, math.ceil(size / chunk) + 1):
            header[f"{part:05d}"] = blob + signer.sign(f"/upload/{oid}/{upload_id}/{part}", params)
        href = blob + signer.sign(f"/upload/{oid}/{upload_id}/complete", params)
        upload = {"href": href, "header": header, "expires_in": int(signer.ttl_s)}
        return {"upload": upload, "verify": verify}, True
    upload = {
        "href": blob + signer.sign(f"/upload/{oid}", {"size": str(size)}),
        "expires_in": int(signer.ttl_s),
    }
    return {"upload": upload, "verify": verify}, False


async def lfs_batch(ctx: Ctx, repo: RepoRef) -> web.Response:
    body = await json_body(ctx)
    operation = body.get("operation")
    if operation == "upload":
        writable_repo(ctx, repo)
    else:
        ctx.check_gated(repo, ctx.require_repo(repo))
    raw_transfers = body.get("transfers")
    transfers = [str(t) for t in raw_transfers] if isinstance(raw_transfers, list) else ["basic"]
    objects = body.get("objects")
    if operation not in ("upload", "download") or not isinstance(objects, list):
        raise HubHTTPError(400, "expected operation upload|download and a list of objects")
    out: list[dict[str, object]] = []
    multipart = False
    for obj in objects:
        oid, size = (obj.get("oid"), obj.get("size")) if isinstance(obj, dict) else (None, None)
        if not isinstance(oid, str) or not isinstance(size, int) or not _HEX64.match(oid) or size < 0:
            out.append({"oid": str(oid), "size": size if isinstance(size, int) else 0,
                        "error": {"code": 422, "message": "Invalid object"}})  # fmt: skip
            continue
        found = ctx.svc.store.locate_blob(oid)
        if operation == "download":
            if found is None:
                out.append(
                    {"oid": oid, "size": size, "error": {"code": 404, "message": "Object does not exist"}}
                )
            else:
                href = ctx.blob_origin() + ctx.svc.signer.sign(f"/blobs/{oid}")
                out.append({"oid": oid, "size": found[1], "actions": {"download": {"href": href}}})
        elif found is not None and found[1] == size:
            out.append({"oid": oid, "size": size})  # already stored: no actions
        else:
            actions, is_multipart = _upload_actions(ctx, repo, oid, size, transfers)
            multipart |= is_multipart
            out.append({"oid": oid, "size": size, "authenticated": True, "actions": actions})
    transfer = "multipart" if multipart else "basic"
    return json_response({"transfer": transfer, "objects": out, "hash_algo": "sha256"},
                         headers={"Content-Type": LFS_JSON})  # fmt: skip


async def lfs_verify(ctx: Ctx, repo: RepoRef) -> web.Response:
    writable_repo(ctx, repo)
    body = await json_body(ctx)
    oid, size = body.get("oid"), body.get("size")
    found = ctx.svc.store.locate_blob(oid) if isinstance(oid, str) and _HEX64.match(oid) else None
    if found is None or (isinstance(size, int) and found[1] != size):
        raise HubHTTPError(404, f"LFS object {oid} not found")
    return json_response({"oid": oid, "size": found[1]})


# ---- branches and tags ------------------------------------------------------------------------
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
MAX_REF_NAME_BYTES = 255  # a ref is stored as one %-encoded folder name (see Store.branch_dir)


def ref_name_error(name: str) -> str | None:
    """Why `name` cannot name a branch or tag, or None: git's ref-name rules, plus a length.

    Beyond `git check-ref-format`, a name is given without `refs/` and must fit one folder name
    once %-encoded: `.` or a 300-character name would otherwise copy the repo into the refs
    folder itself, or fail deep in the filesystem.
    """
    if not name:
        return "it is empty"
    if name.startswith("refs/"):
        return "give it without the refs/ prefix"
    if bad := _REF_FORBIDDEN.search(name):
        return f"it contains {bad.group()!r} (no spaces, control characters or any of ~^:?*[\\)"
    if name == "@" or "@{" in name:
        return "it is '@' or contains '@{'"
    if name.startswith("-"):
        return "it starts with '-'"  # `git check-ref-format --branch` refuses it: it reads as an option
    if "" in name.split("/"):
        return "it has an empty component (a '/' at either end, or '//')"
    if ".." in name:
        return "it contains '..'"
    if name.endswith("."):
        return "it ends with '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return f"its component {part!r} starts with '.'"
        if part.endswith(".lock"):
            return f"its component {part!r} ends with '.lock'"
    if len(quote(name, safe="")) > MAX_REF_NAME_BYTES:
        return f"it is too long (at most {MAX_REF_NAME_BYTES} bytes once %-encoded)"
    return None


def _check_ref_name(kind: str, name: object) -> str:
    if not isinstance(name, str):
        raise HubHTTPError(400, f"invalid {kind} name {name!r}: not a string")
    if (reason := ref_name_error(name)) is not None:
        raise HubHTTPError(400, f"invalid {kind} name {name!r}: {reason}")
    return name


def _remove_dir(store: Store, top: Path) -> None:
    # Moved out of the way first so readers never see a half-deleted repo or ref.
    gone = store.new_tmp("deleted-")
    os.replace(top, gone)
    shutil.rmtree(gone, ignore_errors=True)


def _delete_ref(store: Store, repo: RepoRef, ref: str) -> web.Response:
    """Remove a branch or tag (`refs/tags/<t>`) folder; the answer of both DELETE routes."""
    _remove_dir(store, store.branch_dir(repo, ref))
    store.invalidate(repo)
    return json_response({})


async def branch(ctx: Ctx, repo: RepoRef, name: str) -> web.Response:
    writable_repo(ctx, repo)
    store = ctx.svc.store
    if ctx.request.method == "DELETE":
        if name == MAIN:
            # Not a missing revision: a RevisionNotFound code would make clients say "not found".
            raise HubHTTPError(403, f"Cannot delete the default branch '{MAIN}' of {repo.repo_id}")
        if name not in store.branches(repo):
            raise HubHTTPError(404, f"Invalid rev id: {name}", code="RevisionNotFound")
        return _delete_ref(store, repo, name)
    _check_ref_name("branch", name)
    body = await json_body(ctx) if ctx.request.can_read_body else {}
    start = body.get("startingPoint")
    async with ctx.svc.commit_lock(repo):
        if name in store.branches(repo):
            raise HubHTTPError(409, f"Reference already exists: refs/heads/{name}")
        await fork_ref(ctx, repo, start if isinstance(start, str) and start else MAIN, name)
    return json_response({})


async def tag(ctx: Ctx, repo: RepoRef, name: str) -> web.Response:
    """`POST .../tag/{rev}` with `{"tag", "message"?}` tags a revision; `DELETE .../tag/{tag}` drops it.

    There is no history to point into, so a tag is a frozen copy (hardlinks) of the revision's
    files; the message is accepted and not kept.
    """
    writable_repo(ctx, repo)
    store = ctx.svc.store
    if ctx.request.method == "DELETE":
        if name not in store.tags(repo):
            raise HubHTTPError(404, f"Invalid rev id: {name}", code="RevisionNotFound")
        return _delete_ref(store, repo, TAG_PREFIX + name)
    new = _check_ref_name("tag", (await json_body(ctx)).get("tag"))
    # Under the commit lock, so a commit cannot swap files while they are being linked.
    async with ctx.svc.commit_lock(repo):
        if new in store.tags(repo):
            raise HubHTTPError(409, f"Reference already exists: {TAG_PREFIX}{new}")
        await fork_ref(ctx, repo, name, TAG_PREFIX + new)
    return json_response({})


async def fork_ref(ctx: Ctx, repo: RepoRef, rev: str, ref: str) -> None:
    """Make `ref` (a branch, `refs/tags/<t>` or `refs/pr/N`) a copy of revision `rev`.

    The caller holds the repo's commit lock, so a commit cannot swap files while they are linked.
    """
    store = ctx.svc.store
    base = await revision_snapshot(ctx, repo, rev)
    copy_tree(base, store.branch_dir(repo, ref), store.new_tmp("ref-"))
    store.invalidate(repo)


def copy_tree(snap: Snapshot, dest: Path, staging: Path) -> None:
    """Materialise a snapshot as a new folder: hardlinks (copies across filesystems), then one rename."""
    for entry in snap.files.values():
        target = staging / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(entry.abs_path, target)
        except OSError:
            shutil.copy2(entry.abs_path, target)
    staging.mkdir(parents=True, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, dest)
