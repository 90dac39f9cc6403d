"""Discussions and pull requests: `POST/GET /api/{type}s/{repo}/discussions[/{num}]` (hub-protocol §8.6).

A pull request is a `refs/pr/N` branch plus a record in `.batuta/discussions/<type>s/<repo>.json`;
a plain discussion is a record only. Both share one numbering, as on the Hub, and PR branches
made without a record (by hand, or before records existed) are listed with what the commit log
says about them. There are no comments, merges or status changes beyond what opening one gives.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Mapping

from aiohttp import web

from engine._cache import atomic_write
from engine._models import RepoRef
from engine.server._context import Ctx
from engine.server._http import HubHTTPError, json_response
from engine.server._rules import iso_date, mongo_id
from engine.server._store import MAIN, Store
from engine.server._write import fork_ref, json_body, writable_repo

PR_PREFIX = "refs/pr/"
PAGE_SIZE = 50  # the Hub's page size for discussion listings
_NUMBER = re.compile(r"[0-9]{1,9}")  # not str.isdigit(): `²` passes it, and int() then fails


def _pr_number(ref: str) -> int | None:
    tail = ref.removeprefix(PR_PREFIX)
    return int(tail) if ref.startswith(PR_PREFIX) and _NUMBER.fullmatch(tail) else None


def _load(store: Store, repo: RepoRef) -> dict[int, dict[str, object]]:
    try:
        raw = json.loads(store.discussions_file(repo).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {int(k): v for k, v in raw.items() if _NUMBER.fullmatch(k) and isinstance(v, dict)}


def next_number(store: Store, repo: RepoRef) -> int:
    """The number the next discussion or PR gets. Call it under the repo's commit lock."""
    prs = (n for b in store.branches(repo) if (n := _pr_number(b)) is not None)
    return 1 + max([*prs, *_load(store, repo)], default=0)


def add_record(
    store: Store,
    repo: RepoRef,
    num: int,
    *,
    title: str,
    description: str,
    author: str,
    pull_request: bool,
    status: str,
) -> dict[str, object]:
    """Remember discussion `num` (PRs opened empty are drafts on the Hub; opened by a commit, open)."""
    records = _load(store, repo)
    rec: dict[str, object] = {"num": num, "title": title, "description": description, "author": author,
                              "isPullRequest": pull_request, "status": status, "createdAt": time.time()}  # fmt: skip
    records[num] = rec
    atomic_write(
        store.discussions_file(repo),
        json.dumps({str(k): v for k, v in sorted(records.items())}, indent=1).encode(),
    )
    return rec


def _all(store: Store, repo: RepoRef) -> dict[int, dict[str, object]]:
    """Every discussion: the records, plus PR branches that have none."""
    records = _load(store, repo)
    log = store.commit_log(repo)
    for ref in store.branches(repo):
        num = _pr_number(ref)
        if num is None or num in records:
            continue
        first = next((r for r in log if r.get("branch") == ref), {})
        try:
            made = float(str(first.get("date", ""))) if first else store.branch_dir(repo, ref).stat().st_mtime
        except (OSError, ValueError):
            made = 0.0
        records[num] = {"num": num, "title": first.get("title") or ref, "description": "",
                        "author": first.get("author", ""), "isPullRequest": True, "status": "open",
                        "createdAt": made}  # fmt: skip
    return records


def _date(rec: Mapping[str, object], key: str = "createdAt") -> str:
    value = rec.get(key)
    return iso_date(float(value) if isinstance(value, int | float) else 0.0)


def _author(name: object) -> dict[str, object]:
    return {"name": str(name or "deleted"), "fullname": str(name or "deleted"), "type": "user",
            "avatarUrl": "", "isPro": False}  # fmt: skip


def _summary(ctx: Ctx, repo: RepoRef, rec: Mapping[str, object]) -> dict[str, object]:
    num = rec["num"]
    return {
        "num": num,
        "title": rec.get("title", ""),
        "status": rec.get("status", "open"),
        "isPullRequest": bool(rec.get("isPullRequest")),
        "createdAt": _date(rec),
        "author": _author(rec.get("author")),
        "repo": {"name": repo.repo_id, "type": repo.repo_type},
        "pinned": False,
        "numComments": 1 if rec.get("description") else 0,  # the opening comment, see _events
        "topReactions": [],
        "url": f"{ctx.repo_url(repo)}/discussions/{num}",
    }


def _events(store: Store, repo: RepoRef, rec: Mapping[str, object]) -> list[dict[str, object]]:
    """The opening comment (when there is a description), then the PR's commits, oldest first."""
    num, author = rec["num"], rec.get("author")
    events: list[dict[str, object]] = []
    if description := str(rec.get("description") or ""):
        latest = {"raw": description, "html": f"<p>{html.escape(description)}</p>",
                  "updatedAt": _date(rec), "author": _author(author)}  # fmt: skip
        events.append({"id": mongo_id(f"{repo}/discussions/{num}/comment"), "type": "comment",
                       "createdAt": _date(rec), "author": _author(author),
                       "data": {"edited": False, "hidden": False, "latest": latest, "history": [latest],
                                "numEdits": 0, "editors": [str(author or "")], "reactions": []}})  # fmt: skip
    if rec.get("isPullRequest"):
        for i, c in enumerate(r for r in store.commit_log(repo) if r.get("branch") == f"{PR_PREFIX}{num}"):
            events.append({"id": mongo_id(f"{repo}/discussions/{num}/commit/{i}"), "type": "commit",
                           "createdAt": _date(c, "date"), "author": _author(c.get("author")),
                           "data": {"subject": c.get("title", ""), "oid": c.get("id", "")}})  # fmt: skip
    return events


# ---- routes -----------------------------------------------------------------------------------
async def create(ctx: Ctx, repo: RepoRef) -> web.Response:
    """Open a discussion, or with `pullRequest: true` a draft PR branching from main's head."""
    writable_repo(ctx, repo)
    assert ctx.token is not None
    body = await json_body(ctx)
    title, description = body.get("title"), body.get("description")
    if not isinstance(title, str) or not title.strip():
        raise HubHTTPError(400, "a discussion needs a non-empty 'title'")
    store, pull_request = ctx.svc.store, bool(body.get("pullRequest"))
    # The commit lock keeps numbers unique against concurrent `create_pr=1` commits.
    async with ctx.svc.commit_lock(repo):
        num = next_number(store, repo)
        if pull_request:
            await fork_ref(ctx, repo, MAIN, f"{PR_PREFIX}{num}")
        rec = add_record(store, repo, num, title=title.strip(), author=ctx.token.user,
                         description=description if isinstance(description, str) else "",
                         pull_request=pull_request, status="draft" if pull_request else "open")  # fmt: skip
    return json_response(_summary(ctx, repo, rec))


async def details(ctx: Ctx, repo: RepoRef, num: str) -> web.Response:
    ctx.require_repo(repo)
    store = ctx.svc.store
    rec = _all(store, repo).get(int(num)) if _NUMBER.fullmatch(num) else None
    if rec is None:
        raise HubHTTPError(404, f"Discussion {num} not found in {repo.repo_id}")
    out = _summary(ctx, repo, rec)
    out.update(events=_events(store, repo, rec), isReport=False, locked=False)
    if rec.get("isPullRequest"):
        out.update(changes={"base": f"refs/heads/{MAIN}"}, filesWithConflicts=[])
    return json_response(out)


def _wanted(rec: Mapping[str, object], kind: str, status: str, author: str) -> bool:
    is_pr, state = bool(rec.get("isPullRequest")), str(rec.get("status", "open"))
    if (kind == "pull_request" and not is_pr) or (kind == "discussion" and is_pr):
        return False
    if (status == "open" and state not in ("open", "draft")) or (
        status == "closed" and state not in ("closed", "merged")
    ):
        return False
    return not author or str(rec.get("author", "")).lower() == author.lower()


async def listing(ctx: Ctx, repo: RepoRef) -> web.Response:
    """`{"discussions", "count", "start", "numClosedDiscussions"}`, newest first, pages of 50 (`p=`)."""
    ctx.require_repo(repo)
    store, q = ctx.svc.store, ctx.query
    try:
        page = max(0, int(q.get("p", "0")))
    except ValueError:
        raise HubHTTPError(400, "p must be an integer") from None
    every = sorted(_all(store, repo).values(), key=lambda r: -int(str(r["num"])))
    kind, status, author = q.get("type", "all"), q.get("status", "all"), q.get("author", "")
    chosen = [r for r in every if _wanted(r, kind, status, author)]
    start = page * PAGE_SIZE
    items = [_summary(ctx, repo, r) for r in chosen[start : start + PAGE_SIZE]]
    closed = sum(1 for r in every if r.get("status") in ("closed", "merged"))
    return json_response({"discussions": items, "count": len(chosen), "start": start,
                          "numClosedDiscussions": closed})  # fmt: skip
