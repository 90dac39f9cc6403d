"""All terminal output: tables, trees, progress, JSON documents and error lines (the only rich importer)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from cli._format import human_bytes
from engine._events import (
    BytesMoved,
    FileFailed,
    FileFinished,
    FileStarted,
    HostPaused,
    Notice,
    PlanReady,
    RetryScheduled,
)

if TYPE_CHECKING:
    from rich.console import Console

    from engine import InfoResult, RepoSummary
    from engine._pull import PullResult


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    # NO_COLOR is honoured by rich itself; a pipe gets no colour and no animation.
    # soft_wrap: long lines (paths, URLs) stay whole for scripts and copy-paste.
    return Console(stderr=stderr, highlight=False, soft_wrap=True, no_color="NO_COLOR" in os.environ or None)


def line(text: str, *, err: bool = False) -> None:
    """One plain line (no markup, no wrapping): summaries that scripts may parse."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def note(text: str, progress: Any | None = None) -> None:
    """A message for the user: above a live progress display when there is one, else on stderr."""
    if progress is not None:
        progress.console.print(text, markup=False, highlight=False)
    else:
        line(text, err=True)


# Set in the click context's meta, which lives exactly as long as one invocation (tests run
# many in one process), so a failure after a document (partial pull, secrets) adds no second one.
_JSON_WRITTEN = "batuta.json_written"


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    if (ctx := click.get_current_context(silent=True)) is not None:
        ctx.meta[_JSON_WRITTEN] = True


def error_document(message: str, exit_code: int, **details: object) -> None:
    """Under --json, `{"error": {"message", "exit_code", **details}}` on stdout unless a document was written.

    Every command names its --json flag `as_json` (hf.JsonOpt), so the running command's own
    parameters say whether a script is waiting for a document, push included.
    """
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.params.get("as_json") is not True or ctx.meta.get(_JSON_WRITTEN):
        return
    emit_json({"error": {"message": message, "exit_code": exit_code, **details}})


def ecosystem(*, integration: bool, as_json: bool) -> None:
    from engine import _ecosystem as eco

    if as_json:
        emit_json(eco.integration_document() if integration else eco.ecosystem_document())
        return
    text = eco.render_ascii_integration() if integration else eco.render_ascii_tree()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def search_results(repo_type: str, hits: Sequence[RepoSummary], *, as_json: bool) -> None:
    if as_json:
        emit_json({"type": repo_type, "count": len(hits), "results": [h._asdict() for h in hits]})
        return
    out = console()
    if not hits:
        out.print(f"no {repo_type}s found")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col, justify in (
        ("id", "left"),
        ("task", "left"),
        ("downloads", "right"),
        ("likes", "right"),
        ("updated", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for h in hits:
        table.add_row(h.id, h.task or "-", f"{h.downloads:,}", f"{h.likes:,}", (h.last_modified or "-")[:10])
    out.print(table)


def repo_info(result: InfoResult, *, as_json: bool) -> None:
    i = result.info
    files = [f._asdict() for f in result.files]
    if as_json:
        emit_json(
            {
                "type": result.repo_type,
                "id": i.id,
                "sha": i.sha,
                "author": i.author,
                "private": i.private,
                "gated": i.gated,
                "license": i.license,
                "task": i.task,
                "tags": list(i.tags),
                "downloads": i.downloads,
                "likes": i.likes,
                "last_modified": i.last_modified,
                "files": files,
                "total_bytes": result.total_bytes,
                "quantizations": list(result.quantizations),
            }
        )
        return
    out = console()
    gated = "no" if not i.gated else f"yes ({i.gated})"
    rows = [
        ("id", i.id),
        ("type", result.repo_type),
        ("commit", i.sha or "-"),
        ("author", i.author or "-"),
        ("private", "yes" if i.private else "no"),
        ("gated", gated),
        ("license", i.license or "-"),
        ("task", i.task or "-"),
        ("tags", ", ".join(i.tags) or "-"),
        ("downloads", f"{i.downloads:,}"),
        ("likes", f"{i.likes:,}"),
        ("last modified", i.last_modified or "-"),
        ("files", f"{len(result.files)} ({human_bytes(result.total_bytes)})"),
    ]
    if result.quantizations:
        rows.append(("quantizations", ", ".join(result.quantizations)))
    for key, value in rows:
        out.print(f"{key + ':':<15}{value}", markup=False)
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col, justify in (
        ("", "left"),
        ("file", "left"),
        ("size", "right"),
        ("lfs", "left"),
        ("safety", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for f in result.files:
        mark = "✓" if f.safe else "✗"
        table.add_row(mark, f.path, human_bytes(f.size), "lfs" if f.lfs else "", f.reason)
    out.print()
    out.print(table)


def server_ready(url: str, blob_url: str) -> None:
    out = console(stderr=True)
    out.print(f"serving the Hub API on {url} (CDN blobs on {blob_url}); Ctrl-C stops", markup=False)
    out.print(f"use it with: HF_ENDPOINT={url}", markup=False)


# rich redraws the whole display on every add_task: a line per file in flight is kept for files
# big enough to watch; thousands of small files show in the total line's file count instead.
FILE_LINE_BYTES = 1 << 20


class _TransferView:
    """Turns engine events into a live rich display on a terminal, or plain stderr lines.

    Off a terminal (or with --quiet / --json) rich is not even imported: a scripted pull pays
    nothing for the display it does not show.
    """

    def __init__(self, live: bool, verbose: bool) -> None:
        self.verbose = verbose
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}
        self.files_total = 0
        self.files_done = 0
        if live:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console(stderr=True),  # stdout is for the destination folder alone
                transient=True,
            )
            self.total = self.progress.add_task("total", total=None, visible=False)

    def say(self, text: str) -> None:
        note(text, self.progress)

    def __call__(self, event: Any) -> None:
        match event:
            case BytesMoved(path=path, n=n) if self.progress is not None:
                self.progress.advance(self.total, n)
                if path in self.tasks:
                    self.progress.advance(self.tasks[path], n)
            case PlanReady(files=files, total_bytes=total, skipped=skipped):
                self.files_total, self.files_done = files, skipped
                if self.progress is not None:
                    self.progress.update(self.total, total=total, visible=True)
                self._label()
            case FileStarted(path=path, total_bytes=size) if (
                self.progress is not None and size >= FILE_LINE_BYTES
            ):
                self.tasks[path] = self.progress.add_task(path, total=size)
            case FileFinished(path=path):
                self.files_done += 1
                self._finish(path)
            case FileFailed(path=path):
                # Not said here: a failure shared by every file ends the run as the error line,
                # and pull_summary lists the files of a partial pull; either way once.
                self.files_done += 1
                self._finish(path)
            case HostPaused():
                self.say(wait_line(event))
            case RetryScheduled(url=url, attempt=attempt, delay_s=delay, reason=reason) if self.verbose:
                self.say(f"retry {attempt} in {delay:.1f} s ({reason}): {url}")
            case Notice(message=message):
                self.say(message)
            case _:
                pass

    def _finish(self, path: str) -> None:
        task = self.tasks.pop(path, None)
        if task is not None:
            self.progress.remove_task(task)
        self._label()

    def _label(self) -> None:
        if self.progress is not None:
            self.progress.update(
                self.total, description=f"total ({self.files_done}/{self.files_total} files)"
            )


def wait_line(event: HostPaused) -> str:
    """How every command says that it waits for a host."""
    return f"waiting {event.delay_s:.0f} s for {event.host}: {event.reason}"


def wait_notes(*, verbose: bool) -> Callable[[Any], None]:
    """The event sink of commands without progress (info, search): waits, and retries with -v.

    The same view as a quiet pull, so every command explains a wait in the same words, on stderr.
    """
    return _TransferView(False, verbose)


@contextmanager
def transfer_progress(*, quiet: bool, verbose: bool = False) -> Iterator[Callable[[Any], None]]:
    """A live progress display (on stderr) fed by engine events; nothing animated unless both
    stdout and stderr are a terminal: `DIR=$(batuta hf pull ...)` and `2>log` stay plain."""
    view = _TransferView(not quiet and sys.stdout.isatty() and sys.stderr.isatty(), verbose)
    if view.progress is None:
        yield view
        return
    with view.progress:
        yield view


def pull_summary(result: PullResult, *, as_json: bool, named: Sequence[str] = ()) -> None:
    """The pull document, or the plan, or the summary on stderr and the destination on stdout.

    `named` are the FILE arguments: with exactly one, stdout gets that file's path rather than the
    folder, as `hf download REPO FILE` prints it, so `cat "$(batuta hf pull ... config.json)"` works.
    """
    from cli.errors import ExitCode
    from cli.runner import fail

    mb_s = result.bytes_downloaded / 1e6 / result.seconds if result.seconds > 0 else 0.0
    if as_json:
        emit_json(
            {
                "repo": result.repo,
                "type": result.repo_type,
                "revision": result.revision,
                "commit": result.commit,
                "destination": result.destination,
                "dry_run": result.dry_run,
                "files": [asdict(f) for f in result.files],
                "total_bytes": result.total_bytes,
                "downloaded": result.downloaded,
                "bytes_downloaded": result.bytes_downloaded,
                "skipped": result.skipped,
                "blocked": [asdict(b) for b in result.blocked],
                "allowed_unsafe": [asdict(b) for b in result.allowed_unsafe],
                "failed": [asdict(f) for f in result.failed],
                "retries": result.retries,
                "hub_unreachable": result.hub_unreachable,
                "seconds": round(result.seconds, 3),
                "mb_per_s": round(mb_s, 1),
            }
        )
    elif result.dry_run:
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for col in ("action", "file", "size"):
            table.add_column(col, justify="right" if col == "size" else "left")
        for f in result.files:
            table.add_row(f.action, f.path, human_bytes(f.size))
        for b in result.blocked:
            table.add_row("blocked", b.path, human_bytes(b.size))
        console().print(table)
        todo = sum(f.size for f in result.files if f.action == "download")
        line(
            f"plan for {result.repo}@{result.revision} ({result.commit[:12]}): {len(result.files)} files, "
            f"{human_bytes(todo)} to download, {len(result.skipped)} already present, {len(result.blocked)} blocked"
        )
    else:
        for b in result.allowed_unsafe:
            line(f"warning: downloaded unsafe file {b.path} ({b.reason})", err=True)
        if result.ok:
            secs = f"{result.seconds:.2f}" if result.seconds < 10 else f"{result.seconds:.1f}"
            line(
                f"pulled {result.repo}@{result.revision} ({result.commit[:12]}): {len(result.downloaded)} "
                f"downloaded, {len(result.skipped)} already present, {len(result.blocked)} blocked, "
                f"{human_bytes(result.bytes_downloaded)} in {secs} s ({mb_s:.1f} MB/s)",
                err=True,
            )
            # stdout holds the folder (or the one file named) and nothing else, as with
            # `hf download`: DIR=$(batuta hf pull ...). A failed pull prints neither: its error
            # line says how many files failed.
            one = named[0] if len(named) == 1 else None
            if one is not None and any(f.path == one for f in result.files):
                line(os.path.join(result.destination, *one.split("/")))
            else:
                line(result.destination)
    if result.blocked and not as_json and not result.dry_run:  # the plan lists them, with the hint above
        n = len(result.blocked)
        line(
            f"{n} unsafe {'file was' if n == 1 else 'files were'} not downloaded (pass --allow-unsafe to get them)",
            err=True,
        )
    if result.failed:
        code = (
            ExitCode.INTEGRITY
            if all(f.kind == "IntegrityError" for f in result.failed)
            else ExitCode.INCOMPLETE
        )
        if len(result.failed) > 1 and not as_json:
            # The error line names one reason; files that failed differently are listed first.
            for failure in result.failed:
                line(f"failed: {failure.path}: {failure.reason}", err=True)
        names = ", ".join(f.path for f in result.failed[:5]) + (" ..." if len(result.failed) > 5 else "")
        fail(
            f"{len(result.failed)} of {len(result.files)} files failed: {names}: {result.failed[0].reason}",
            code,
        )
