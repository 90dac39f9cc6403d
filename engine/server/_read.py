"""Read routes: listing, repo info, tree, paths-info, refs, commits, resolve (hub-protocol §3-6)."""

from __future__ import annotations

import base64
import html
import json
import mimetypes
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from engine._models import RepoRef, RepoType
from engine.server._card import read_front_matter, with_card
from engine.server._context import Ctx, visible_to
from engine.server._faults import BodyFaults
from engine.server._http import HubHTTPError, json_response, query_list, truthy
from engine.server._rules import iso_date, lfs_pointer, mongo_id
from engine.server._store import TAG_PREFIX, Entry, Snapshot, iter_prefixed
from engine.server._stream import RangeNotSatisfiable, range_headers, send_file

_COMMON_EXPAND = (
    "author", "cardData", "createdAt", "disabled", "downloads", "downloadsAllTime", "gated", "lastModified",
    "likes", "private", "resourceGroup", "sha", "siblings", "tags", "trendingScore", "usedStorage", "xetEnabled",
)  # fmt: skip
VALID_EXPAND: dict[RepoType, frozenset[str]] = {
    "model": frozenset(_COMMON_EXPAND).union(
        (
            "baseModels",
            "childrenModelCount",
            "config",
            "evalResults",
            "gguf",
            "inference",
            "inferenceProviderMapping",
            "library_name",
            "mask_token",
            "model-index",
            "pipeline_tag",
            "safetensors",
            "spaces",
            "transformersInfo",
            "widgetData",
        )
    ),  # fmt: skip
    "dataset": frozenset(_COMMON_EXPAND).union(("citation", "description", "mainSize", "paperswithcode_id")),
    "space": frozenset(_COMMON_EXPAND).union(
        ("datasets", "models", "runtime", "sdk", "subdomain", "host", "likes", "region")
    ),
}
_LIST_DEFAULT: dict[RepoType, tuple[str, ...]] = {
    "model": (
        "likes",
        "trendingScore",
        "private",
        "downloads",
        "tags",
        "pipeline_tag",
        "library_name",
        "createdAt",
        "modelId",
    ),  # fmt: skip
    "dataset": (
        "author",
        "sha",
        "lastModified",
        "private",
        "gated",
        "disabled",
        "downloads",
        "likes",
        "trendingScore",
        "tags",
        "description",
        "createdAt",
    ),  # fmt: skip
    "space": ("author", "likes", "trendingScore", "private", "sdk", "tags", "createdAt"),
}
_LIST_FULL = ("author", "sha", "lastModified", "gated", "disabled", "siblings")
_INFO_HIDDEN = frozenset({"downloadsAllTime", "xetEnabled", "resourceGroup"})
_NEEDS_SNAPSHOT = frozenset({"sha", "lastModified", "siblings", "usedStorage", "mainSize"})
_NO_FAULTS = BodyFaults()
README = "README.md"
_SORT_ALIASES = {
    "last_modified": "lastModified",
    "created_at": "createdAt",
    "trending_score": "trendingScore",
}


def _int(meta: Mapping[str, object], key: str) -> int:
    v = meta.get(key, 0)
    return int(v) if isinstance(v, int | float) else 0


def _gated(meta: Mapping[str, object]) -> str | bool:
    g = meta.get("gated", False)
    if g is True:
        return "manual"
    return g if g in ("auto", "manual") else False


def repo_tags(repo: RepoRef, meta: Mapping[str, object]) -> list[str]:
    """The Hub-style tag list: explicit tags, library, pipeline, `license:`, dataset categories."""
    raw = meta.get("tags")
    tags = [t for t in raw if isinstance(t, str)] if isinstance(raw, list) else []
    for key in ("library_name", "pipeline_tag"):
        if isinstance(meta.get(key), str):
            tags.append(str(meta[key]))
    for key in ("task_categories", "task_ids", "language", "size_categories", "modality"):
        values = meta.get(key)
        for v in [values] if isinstance(values, str) else values if isinstance(values, list) else []:
            tags.append(f"{key}:{v}")
    if isinstance(meta.get("license"), str):
        tags.append(f"license:{meta['license']}")
    if repo.repo_type == "space" and isinstance(meta.get("sdk"), str):
        tags.append(str(meta["sdk"]))
    tags.append("region:us")
    return list(dict.fromkeys(tags))


def _created_ts(ctx: Ctx, repo: RepoRef, meta: Mapping[str, object]) -> str:
    created = meta.get("createdAt")
    if isinstance(created, str):
        return created
    if isinstance(created, int | float):
        return iso_date(float(created))
    try:
        return iso_date(ctx.svc.store.repo_dir(repo).stat().st_mtime)
    except OSError:
        return iso_date(0)


def _sibling(e: Entry, blobs: bool) -> dict[str, object]:
    if not blobs:
        return {"rfilename": e.path}
    out: dict[str, object] = {"rfilename": e.path, "blobId": e.oid, "size": e.size}
    if e.sha256 is not None:
        out["lfs"] = {"sha256": e.sha256, "size": e.size, "pointerSize": e.pointer_size}
    return out


def repo_props(
    ctx: Ctx, repo: RepoRef, meta: Mapping[str, object], snap: Snapshot | None, *, blobs: bool = False
) -> dict[str, object]:
    """Every property we can describe; callers pick the subset their route returns."""
    ns, name = repo.repo_id.split("/")
    p: dict[str, object] = {
        "_id": mongo_id(f"{repo.repo_type}/{repo.repo_id}"),
        "id": repo.repo_id,
        "author": ns,
        "private": bool(meta.get("private", False)),
        "gated": _gated(meta),
        "disabled": bool(meta.get("disabled", False)),
        "downloads": _int(meta, "downloads"),
        "downloadsAllTime": _int(meta, "downloadsAllTime") or _int(meta, "downloads"),
        "likes": _int(meta, "likes"),
        "trendingScore": _int(meta, "trendingScore"),
        "tags": repo_tags(repo, meta),
        "createdAt": _created_ts(ctx, repo, meta),
        "xetEnabled": False,
    }
    card = meta.get("cardData")
    if isinstance(card, dict):
        p["cardData"] = card
    elif isinstance(meta.get("license"), str):
        p["cardData"] = {"license": meta["license"]}
    if snap is not None:
        p["sha"] = snap.commit
        p["lastModified"] = head_commit(ctx, snap)["date"]
        p["siblings"] = [_sibling(e, blobs) for e in snap.files.values()]
        p["usedStorage"] = sum(e.size for e in snap.files.values())
    if repo.repo_type == "model":
        p["modelId"] = repo.repo_id
        p["spaces"] = []
        for key in ("pipeline_tag", "library_name", "mask_token", "widgetData", "config", "transformersInfo"):
            if key in meta:
                p[key] = meta[key]
    elif repo.repo_type == "dataset":
        for key in ("description", "citation", "paperswithcode_id"):
            if key in meta:
                p[key] = meta[key]
        if snap is not None:
            p["mainSize"] = p["usedStorage"]
    else:
        sdk = meta.get("sdk", "static")
        p["sdk"] = sdk
        p["subdomain"] = f"{ns}-{name}".lower().replace("_", "-").replace(".", "-")
        p["host"] = f"{ctx.origin}/spaces/{repo.repo_id}"
        p["runtime"] = {"stage": "RUNNING", "hardware": {"current": None, "requested": None}, "storage": None}
        p["models"], p["datasets"] = [], []
    return p


def _expand_fields(ctx: Ctx, repo_type: RepoType) -> list[str] | None:
    expand = query_list(ctx.query, "expand")
    if not expand:
        return None
    bad = [e for e in expand if e not in VALID_EXPAND[repo_type]]
    if bad:
        valid = ", ".join(sorted(VALID_EXPAND[repo_type]))
        raise HubHTTPError(400, f'"expand" must be one of {valid} (got {", ".join(bad)})')
    return expand


def _select(props: Mapping[str, object], keys: Sequence[str]) -> dict[str, object]:
    out = {"_id": props["_id"], "id": props["id"]}
    out.update({k: props[k] for k in keys if k in props})
    return out


async def revision_snapshot(ctx: Ctx, repo: RepoRef, rev: str) -> Snapshot:
    snap = await ctx.svc.store.resolve(repo, rev)
    if snap is None:
        raise HubHTTPError(404, f"Invalid rev id: {rev}", code="RevisionNotFound")
    return snap


# ---- listing ----------------------------------------------------------------------------------
def _matches(ctx: Ctx, repo: RepoRef, meta: Mapping[str, object]) -> bool:
    q = ctx.query
    rid = repo.repo_id.lower()
    if any(s.lower() not in rid for s in q.getall("search", []) if s):
        return False
    author = q.get("author")
    if author and repo.repo_id.split("/")[0].lower() != author.lower():
        return False
    tags = {t.lower() for t in repo_tags(repo, meta)}
    if any(f.lower() not in tags for f in query_list(ctx.query, "filter")):
        return False
    pipeline = q.get("pipeline_tag")
    if pipeline and str(meta.get("pipeline_tag", "")).lower() != pipeline.lower():
        return False
    gated = q.get("gated")
    return gated is None or truthy(gated) == (_gated(meta) is not False)


async def list_repos(ctx: Ctx, repo_type: RepoType) -> web.Response:
    store, q = ctx.svc.store, ctx.query
    expand = _expand_fields(ctx, repo_type)
    full = truthy(q.get("full"))
    if expand is not None:
        fields: list[str] = expand
    else:
        fields = [*_LIST_DEFAULT[repo_type], *(_LIST_FULL if full else ())]
        fields += ["cardData"] if truthy(q.get("cardData")) or full else []
        fields += ["config"] if truthy(q.get("config")) else []
    sort = q.get("sort")
    sort = _SORT_ALIASES.get(sort, sort) if sort else None
    need_snap = bool(_NEEDS_SNAPSHOT.intersection(fields)) or sort == "lastModified"

    rows: list[dict[str, object]] = []
    for repo in store.list_repos(repo_type):
        sidecar = store.meta(repo)
        if not visible_to(sidecar, ctx.token, repo):
            continue
        meta = card_meta(ctx, repo, sidecar, None)
        if not _matches(ctx, repo, meta):
            continue
        snap = await store.snapshot(repo) if need_snap else None
        rows.append(repo_props(ctx, repo, meta, snap))
    rows.sort(key=lambda r: str(r["id"]))
    # Stable sorts, descending like the Hub; ties keep the id order from above.
    if sort in ("downloads", "likes", "trendingScore"):
        key = sort
        rows.sort(key=lambda r: _int(r, key), reverse=True)
    elif sort in ("lastModified", "createdAt"):
        key = sort
        rows.sort(key=lambda r: str(r.get(key, "")), reverse=True)

    try:
        limit = int(q.get("limit", "0"))
    except ValueError:
        raise HubHTTPError(400, "limit must be an integer") from None
    page = min(limit, ctx.svc.config.list_page_size) if limit > 0 else ctx.svc.config.list_page_size
    start = _decode_cursor(q.get("cursor"))
    body = [_select(r, fields) for r in rows[start : start + page]]
    headers = {}
    if start + page < len(rows):
        headers["Link"] = f'<{_next_url(ctx, start + page)}>; rel="next"'
    return json_response(body, headers=headers)


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return max(0, int(data["offset"]))
    except (ValueError, KeyError, TypeError, OverflowError):  # {"offset": 1e999}
        raise HubHTTPError(400, "invalid cursor") from None


def _next_url(ctx: Ctx, offset: int) -> str:
    cursor = base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")
    items = [(k, v) for k, v in ctx.query.items() if k != "cursor"] + [("cursor", cursor)]
    raw_path = ctx.request.raw_path.split("?", 1)[0]
    return f"{ctx.origin}{raw_path}?{urlencode(items)}"


# ---- repo info --------------------------------------------------------------------------------
def card_meta(
    ctx: Ctx, repo: RepoRef, meta: Mapping[str, object], snap: Snapshot | None
) -> dict[str, object]:
    """Sidecar metadata merged with the README front matter of `snap` (main's when None)."""
    if snap is None:  # listings: no snapshot needed to find main's README
        path: str | None = str(ctx.svc.store.repo_dir(repo) / README)
    else:
        entry = snap.files.get(README)
        path = entry.abs_path if entry is not None else None
    return with_card(meta, read_front_matter(path) if path else {})


async def repo_info(ctx: Ctx, repo: RepoRef, rev: str | None) -> web.Response:
    sidecar = ctx.require_repo(repo)
    expand = _expand_fields(ctx, repo.repo_type)
    snap = await revision_snapshot(ctx, repo, rev or "main")
    meta = card_meta(ctx, repo, sidecar, snap)
    props = repo_props(ctx, repo, meta, snap, blobs=truthy(ctx.query.get("blobs")))
    if expand is not None:
        return json_response(_select(props, expand))
    return json_response({k: v for k, v in props.items() if k not in _INFO_HIDDEN})


# ---- tree and paths-info ----------------------------------------------------------------------
def head_commit(ctx: Ctx, snap: Snapshot) -> dict[str, object]:
    """`{id, title, date}` of the commit a snapshot is at (the `lastCommit` of tree entries)."""
    head = ctx.svc.store.commit_info(snap)
    date = head.get("date")
    when = float(date) if isinstance(date, int | float) else snap.last_modified
    return {"id": snap.commit, "title": head.get("title", ""), "date": iso_date(when)}


def _tree_entry(
    snap: Snapshot, path: str, dirs: Mapping[str, str], last_commit: dict[str, object] | None
) -> dict[str, object]:
    e = snap.files.get(path)
    out: dict[str, Any]
    if e is None:
        out = {"type": "directory", "oid": dirs[path], "size": 0, "path": path}
    else:
        out = {"type": "file", "oid": e.oid, "size": e.size, "path": e.path}
        if e.sha256 is not None:
            out["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": e.pointer_size}
    if last_commit is not None:
        out["lastCommit"] = last_commit
    return out


async def tree(ctx: Ctx, repo: RepoRef, rev: str, path: str) -> web.Response:
    ctx.require_repo(repo)
    snap = await revision_snapshot(ctx, repo, rev)
    path = path.strip("/")
    dirs = snap.dirs()
    if path and path not in dirs:
        raise HubHTTPError(
            404, f"Entry not found: {path}", code="EntryNotFound", headers={"X-Repo-Commit": snap.commit}
        )
    recursive, expand = truthy(ctx.query.get("recursive")), truthy(ctx.query.get("expand"))
    candidates = sorted([*iter_prefixed(snap.files, path), *iter_prefixed(dirs, path)])
    if not recursive:
        depth = path.count("/") + 1 if path else 0
        candidates = [p for p in candidates if p.count("/") == depth]
    cfg = ctx.svc.config
    page = cfg.tree_expand_page_size if expand else cfg.tree_page_size
    start = _decode_cursor(ctx.query.get("cursor"))
    last = head_commit(ctx, snap) if expand else None
    body = [_tree_entry(snap, p, dirs, last) for p in candidates[start : start + page]]
    headers = {"X-Repo-Commit": snap.commit}
    if start + page < len(candidates):
        headers["Link"] = f'<{_next_url(ctx, start + page)}>; rel="next"'
    return json_response(body, headers=headers)


async def paths_info(ctx: Ctx, repo: RepoRef, rev: str) -> web.Response:
    ctx.require_repo(repo)
    snap = await revision_snapshot(ctx, repo, rev)
    if ctx.request.content_type == "application/json":
        data = await ctx.request.json()
        paths = [str(p) for p in data.get("paths", [])] if isinstance(data, dict) else []
        expand = isinstance(data, dict) and bool(data.get("expand"))
    else:
        form = await ctx.request.post()
        paths = [str(p) for p in form.getall("paths", [])]
        expand = truthy(str(form.get("expand", "")))
    dirs = snap.dirs()
    last = head_commit(ctx, snap) if expand else None
    body = [
        _tree_entry(snap, p, dirs, last)
        for p in dict.fromkeys(p.strip("/") for p in paths)
        if p in snap.files or p in dirs
    ]
    return json_response(body, headers={"X-Repo-Commit": snap.commit})


# ---- refs and commits -------------------------------------------------------------------------
async def refs(ctx: Ctx, repo: RepoRef) -> web.Response:
    ctx.require_repo(repo)
    branches, prs = [], []
    for name in ctx.svc.store.branches(repo):
        snap = await ctx.svc.store.snapshot(repo, name)
        if snap is None:
            continue
        if name.startswith("refs/pr/"):
            prs.append({"name": name, "ref": name, "targetCommit": snap.commit})
        else:
            branches.append({"name": name, "ref": f"refs/heads/{name}", "targetCommit": snap.commit})
    tags = []
    for name in ctx.svc.store.tags(repo):
        if (snap := await ctx.svc.store.snapshot(repo, TAG_PREFIX + name)) is not None:
            tags.append({"name": name, "ref": TAG_PREFIX + name, "targetCommit": snap.commit})
    body: dict[str, object] = {"branches": branches, "converts": [], "tags": tags}
    if truthy(ctx.query.get("include_prs")):
        body["pullRequests"] = prs
    return json_response(body)


def _ancestors(log: Sequence[Mapping[str, object]], head: Mapping[str, object]) -> list[Mapping[str, object]]:
    """Older commits by following recorded parents: a tag has no records of its own."""
    by_id = {r.get("id"): r for r in log}  # later records win: the latest write of that tree
    out: list[Mapping[str, object]] = []
    seen = {head.get("id")}
    rec: Mapping[str, object] | None = head
    while rec is not None:
        parents = rec.get("parents")
        parent = parents[0] if isinstance(parents, list) and parents else None
        rec = by_id.get(parent) if parent not in seen else None
        if rec is not None:
            seen.add(parent)
            out.append(rec)
    return out


def _formatted(text: object) -> str:
    """The Hub renders titles and messages for HTML; escaping keeps plain text readable and safe."""
    return html.escape(str(text or ""))


async def commits(ctx: Ctx, repo: RepoRef, rev: str) -> web.Response:
    ctx.require_repo(repo)
    snap = await revision_snapshot(ctx, repo, rev)
    store = ctx.svc.store
    head = store.commit_info(snap)
    log = store.commit_log(repo)
    if snap.branch.startswith(TAG_PREFIX):
        older = _ancestors(log, head)
    else:
        older = [r for r in reversed(log) if r.get("branch") == snap.branch and r.get("id") != snap.commit]
    formatted = "formatted" in query_list(ctx.query, "expand")
    items = []
    for rec in [head, *older]:
        date = rec.get("date")
        item = {
            "id": rec.get("id"),
            "title": rec.get("title", ""),
            "message": rec.get("message", ""),
            "authors": [{"user": rec.get("author", "batuta"), "avatar": None}],
            "date": iso_date(float(date) if isinstance(date, int | float) else snap.last_modified),
        }
        if formatted:
            item["formatted"] = {"title": _formatted(item["title"]), "message": _formatted(item["message"])}
        items.append(item)
    return json_response(items, headers={"X-Total-Count": str(len(items))})


# ---- resolve ----------------------------------------------------------------------------------
def blob_location(ctx: Ctx, entry: Entry) -> str:
    """A signed, self-authenticating URL on the blob listener (no token will reach it)."""
    assert entry.sha256 is not None
    signed = ctx.svc.signer.sign(f"/blobs/{entry.sha256}", {"filename": entry.path})
    return f"{ctx.blob_origin()}{signed}"


async def resolve(ctx: Ctx, repo: RepoRef, rev: str, path: str, *, raw: bool = False) -> web.StreamResponse:
    meta = ctx.require_repo(repo)
    ctx.check_gated(repo, meta)
    snap = await revision_snapshot(ctx, repo, rev)
    entry = snap.files.get(path)
    if entry is None:
        raise HubHTTPError(
            404, "Entry not found", code="EntryNotFound", headers={"X-Repo-Commit": snap.commit}
        )
    headers = {"X-Repo-Commit": snap.commit, "ETag": f'"{entry.etag}"'}
    if entry.is_lfs and not raw:
        headers.update(
            {
                "Location": blob_location(ctx, entry),
                "X-Linked-Etag": f'"{entry.etag}"',
                "X-Linked-Size": str(entry.size),
                "Accept-Ranges": "bytes",
            }
        )
        return web.Response(status=302, headers=headers)
    if entry.is_lfs:  # /raw/ of an LFS file is its pointer
        pointer = lfs_pointer(entry.etag, entry.size)
        headers["ETag"] = f'"{entry.oid}"'
        return web.Response(body=pointer, headers=headers, content_type="text/plain")
    ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    headers["Content-Type"] = f"{ctype}; charset=utf-8" if ctype.startswith("text/") else ctype
    try:
        status, offset, count, rng = range_headers(ctx.request.headers.get("Range"), entry.size)
    except RangeNotSatisfiable:
        headers["Content-Range"] = f"bytes */{entry.size}"
        raise HubHTTPError(416, "Requested Range Not Satisfiable", headers=headers) from None
    headers.update(rng)
    faults = ctx.svc.faults.body_faults(ctx.target, throttled=False) if ctx.request.method == "GET" else None
    return await send_file(
        ctx.request,
        path=entry.abs_path,
        status=status,
        offset=offset,
        count=count,
        headers=headers,
        faults=faults or _NO_FAULTS,
        on_sent=lambda n: ctx.svc.stats.sent("resolve", n),
    )
