"""Terminal output of `batuta hf push`: progress bars, the dry-run table, the summary, --json."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from cli._format import human_bytes
from cli.render import emit_json, line, note, wait_line
from engine._events import BytesMoved, FileHashed, HostPaused, Notice, PlanReady, RetryScheduled

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from engine import Event, EventSink, SecretsFoundError
    from engine._pushtypes import PushResult

# rich loads only when a table or a live bar is drawn: a re-push that finds nothing to do
# should not pay for it at start-up.

_VERB = {"add": "add", "update": "update", "delete": "delete", "unchanged": "skip", "ignored": "ignored"}


class _PushProgress:
    """Turns engine events into two bars: hashing, then upload.

    The engine announces each phase with a PlanReady (hashing first, uploading second).
    """

    def __init__(self, progress: Progress | None, verbose: bool) -> None:
        self._progress, self._verbose = progress, verbose
        self._plans = 0
        self._hash: TaskID | None = None
        self._upload: TaskID | None = None

    def __call__(self, event: Event) -> None:
        match event:
            case PlanReady(files=files, total_bytes=total):
                self._plans += 1
                if self._progress is None or not files:
                    return
                label = "hashing" if self._plans == 1 else "uploading"
                task = self._progress.add_task(label, total=total or None)
                if self._plans == 1:
                    self._hash = task
                else:
                    self._upload = task
            case FileHashed(n=n) if self._progress is not None and self._hash is not None:
                self._progress.advance(self._hash, n)
            case BytesMoved(n=n) if self._progress is not None and self._upload is not None:
                self._progress.advance(self._upload, n)
            case HostPaused():
                # Said always: a wait of minutes must not look like a hang.
                note(wait_line(event), self._progress)
            case RetryScheduled(url=url, attempt=attempt, delay_s=delay, reason=reason) if self._verbose:
                note(f"retry {attempt} of {url} in {delay:.1f} s ({reason})", self._progress)
            case Notice(message=message):
                note(message, self._progress)
            case _:
                pass


@contextmanager
def push_progress(*, enabled: bool, verbose: bool) -> Iterator[EventSink]:
    """An event sink drawing progress on stderr when it is a terminal (never under --json)."""
    if not enabled or not sys.stderr.isatty():
        yield _PushProgress(None, verbose)
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from cli.render import console

    err = console(stderr=True)
    progress = Progress(
        TextColumn("{task.description:>10}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    )
    with progress:
        yield _PushProgress(progress, verbose)


def _totals(result: PushResult) -> dict[str, int]:
    counts = dict.fromkeys(_VERB, 0)
    for f in result.files:
        counts[f.action] += 1
    return counts


def push_document(result: PushResult) -> dict[str, Any]:
    """The --json document of a push (also what a dry run reports)."""
    return {
        "repo": result.repo.repo_id,
        "type": result.repo.repo_type,
        "revision": result.revision,
        "dry_run": result.dry_run,
        "up_to_date": result.up_to_date,
        "created_repo": result.created_repo,
        "card_generated": result.card_generated,
        "card_kept": result.card_kept,
        "head": result.head,
        "commits": [{"oid": c.oid, "url": c.url} for c in result.commits],
        "pr_url": result.pr_url,
        "pr_revision": result.pr_revision,
        "pr_number": result.pr_number,
        "counts": _totals(result),
        "bytes_uploaded": result.bytes_uploaded,
        "bytes_inline": result.bytes_inline,
        "bytes_hashed": result.bytes_hashed,
        "lfs_reused": result.lfs_reused,
        "files": [{"path": f.path, "size": f.size, "lfs": f.lfs, "action": f.action} for f in result.files],
        "notices": list(result.notices),
    }


def push_summary(result: PushResult, *, as_json: bool) -> None:
    if as_json:
        emit_json(push_document(result))
        return
    # As `hf upload`: stdout is the URL of what the push made (a script's `$(...)`); the account
    # of it goes to stderr. A dry run's plan is its output, on stdout.
    for text in result.notices:
        line(text, err=True)
    counts = _totals(result)
    where = f"{result.repo.repo_id}@{result.revision}"
    if result.pr_revision:
        # The commits went to the pull request's ref, not to the branch it targets.
        where = f"{result.repo.repo_id}@{result.pr_revision}"
    if result.dry_run:
        _dry_run_table(result)
        moving = sum(f.size for f in result.files if f.action in ("add", "update"))
        line(
            f"dry run: would upload {counts['add'] + counts['update']} files ({human_bytes(moving)}), "
            f"delete {counts['delete']}, skip {counts['unchanged']} unchanged; nothing was sent"
        )
        return
    if result.up_to_date:
        ignored = f", {counts['ignored']} ignored by the repo's .gitignore" if counts["ignored"] else ""
        line(
            f"{where} is up to date ({counts['unchanged']} files unchanged{ignored}); no commit made",
            err=True,
        )
        return
    if result.created_repo:
        line(f"created {result.repo.repo_type} repo {result.repo.repo_id}", err=True)
    if result.card_generated and any(
        f.path == "README.md" and f.action in ("add", "update") for f in result.files
    ):
        line("generated a model card (README.md)", err=True)
    reused = f", {result.lfs_reused} LFS objects already on the server" if result.lfs_reused else ""
    line(
        f"pushed {counts['add']} new and {counts['update']} changed files to {where}, "
        f"deleted {counts['delete']}, {counts['unchanged']} unchanged "
        f"({human_bytes(result.bytes_uploaded + result.bytes_inline)} sent{reused})",
        err=True,
    )
    # The last commit's (or the pull request's) URL is the stdout line; earlier parts of a split
    # push are listed here.
    for c in result.commits[:-1]:
        line(f"commit {c.oid[:12]}  {c.url}", err=True)
    if result.pr_url:
        line(f"opened pull request #{result.pr_number} into {result.revision}", err=True)
    if made := result.pr_url or (result.commits[-1].url if result.commits else None):
        line(made)


def _dry_run_table(result: PushResult) -> None:
    rows = [f for f in result.files if f.action != "unchanged"]
    if not rows:
        return
    from rich.table import Table

    from cli.render import console

    table = Table(box=None, pad_edge=False)
    for col, justify in (("action", "left"), ("file", "left"), ("size", "right"), ("lfs", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for f in rows:
        table.add_row(_VERB[f.action], f.path, human_bytes(f.size), "lfs" if f.lfs else "")
    console().print(table)


def secrets_found(exc: SecretsFoundError) -> None:
    """Every finding (already masked by the engine) on stderr; the caller prints the error line."""
    for finding in exc.findings:
        line(f"  {finding}", err=True)
