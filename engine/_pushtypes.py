"""What a push is asked to do (PushOptions) and what it did (PushResult), shared by the engine,
the CLI's renderer and the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from engine._hashing import Action
from engine._models import RepoRef
from engine._upload import CommitResult


class PushOptions(NamedTuple):
    revision: str = "main"
    message: str | None = None
    description: str = ""
    private: bool = False
    create_pr: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    delete: bool = False
    dry_run: bool = False
    card: bool = True
    license: str | None = None
    # Where in the repo the folder's files go ("" = the root), or the path a single file gets
    # (a trailing `/` keeps its name). `--delete` then only removes files under that folder.
    path_in_repo: str = ""


class PushedFile(NamedTuple):
    """One path of the push and what happened (or, in a dry run, would happen) to it."""

    path: str
    size: int
    lfs: bool
    action: Action


@dataclass(frozen=True, slots=True)
class PushResult:
    repo: RepoRef
    revision: str
    dry_run: bool
    files: tuple[PushedFile, ...]
    commits: tuple[CommitResult, ...] = ()
    pr_url: str | None = None
    pr_revision: str | None = None  # `refs/pr/N` of the pull request the push opened
    head: str | None = None  # the revision's (or the pull request's) commit after the push
    created_repo: bool = False
    card_generated: bool = False
    card_kept: bool = False  # no local README.md: the one in the remote revision stays as it is
    bytes_uploaded: int = 0  # LFS bytes actually sent (not those the server already had)
    bytes_inline: int = 0  # regular-file bytes carried inside commits
    bytes_hashed: int = 0
    lfs_reused: int = 0  # LFS objects the server already stored
    notices: tuple[str, ...] = field(default=())

    def by_action(self, action: Action) -> list[PushedFile]:
        return [f for f in self.files if f.action == action]

    @property
    def up_to_date(self) -> bool:
        return not any(f.action in ("add", "update", "delete") for f in self.files)

    @property
    def pr_number(self) -> int | None:
        return int(self.pr_revision.rsplit("/", 1)[1]) if self.pr_revision else None
