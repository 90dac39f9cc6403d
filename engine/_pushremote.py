"""The remote side of a push: the branch's head and files, the repo or branch created when missing.

A server without commit history (`batuta hf serve`) cannot list a commit once the branch moved
past it, so a tree read by commit id is read again from the new head when that happens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine._errors import AuthRequiredError, NotFoundError
from engine._models import RemoteFile, RepoRef
from engine._pushtypes import PushOptions
from engine._upload import create_branch, create_repo

if TYPE_CHECKING:
    from engine._engine import Engine

MOVED_REREADS = 8  # a branch moving on between two reads, again and again: concurrent pushers


async def remote_state(
    engine: Engine, ref: RepoRef, opts: PushOptions, notices: list[str], sdk: str
) -> tuple[str | None, dict[str, RemoteFile], bool]:
    """(head commit, files at head, repo created) — creating the repo (a Space with `sdk`) or
    branch unless dry-run."""
    api, client = engine.api, engine.client
    created = False
    try:
        info = await api.repo_info(ref, opts.revision, blobs=False)
    except NotFoundError as exc:
        branch_missing = exc.code == "RevisionNotFound"
        if opts.dry_run:
            notices.append(
                f"{'branch ' + opts.revision if branch_missing else ref.repo_id} does not exist yet"
            )
            return None, {}, False
        if not branch_missing:
            created = await create_repo(client, ref, private=opts.private, sdk=sdk)
        if opts.revision != "main":
            await create_branch(client, ref, opts.revision)
        info = await api.repo_info(ref, opts.revision, blobs=False)
    except AuthRequiredError:
        if not opts.dry_run or engine.config.token is not None:
            raise  # a token the Hub refused is an error in a dry run too, not "no token"
        notices.append(f"{ref.repo_id} is not visible without a token: every file is shown as new")
        return None, {}, False
    head, tree = await tree_at(engine, ref, opts.revision, info.sha or None)
    return head, tree, created


async def head_tree(engine: Engine, ref: RepoRef, revision: str) -> tuple[str | None, dict[str, RemoteFile]]:
    info = await engine.api.repo_info(ref, revision, blobs=False)
    return await tree_at(engine, ref, revision, info.sha or None)


async def tree_at(
    engine: Engine, ref: RepoRef, revision: str, head: str | None
) -> tuple[str | None, dict[str, RemoteFile]]:
    """The files at commit `head` of `revision`, read again from the new head should the branch
    move on between the two reads (a server without history cannot list an old commit then)."""
    attempt = 0
    while True:
        try:
            return head, {f.path: f for f in await engine.api.list_tree(ref, head or revision)}
        except NotFoundError:
            attempt += 1
            if head is None or attempt > MOVED_REREADS:
                raise
        head = (await engine.api.repo_info(ref, revision, blobs=False)).sha or None
