"""The local side of a push: the files (a folder's selection, or one file), the `.gitignore` the
push sends with them, and the SDK a new Space needs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine._errors import UsageError
from engine._hashing import LocalFile, collect_files, local_file
from engine._pushplan import guess_space_sdk
from engine._pushtypes import PushOptions

CARD = "README.md"
GITIGNORE = ".gitignore"
GITIGNORE_MAX_BYTES = 1 << 20  # patterns, not data: a larger one is read in part
SDK_SNIFF_BYTES = 64 << 10  # of README.md and app.py, to tell a new Space's SDK


def local_files(path: Path, opts: PushOptions) -> tuple[Path, list[LocalFile]]:
    """(the folder the paths are relative to, the files to push): a folder's selected files, or
    the one file `path` names."""
    if not path.is_file():
        return path, collect_files(path, opts.include, opts.exclude)
    if opts.delete:
        raise UsageError("--delete needs a folder: it removes remote files that the folder lacks")
    if opts.include or opts.exclude:
        raise UsageError("--include/--exclude select files in a folder; PATH is one file")
    one = local_file(path, path.name)
    if one is None:
        raise UsageError(f"'{path}' is not a regular file")
    return path.parent, [one]


def space_sdk(files: Sequence[LocalFile]) -> str:
    """What a new Space runs on, judged by the README's front matter, app.py and the file names."""

    by_rel = {f.rel: f.path for f in files if f.path is not None}

    def head(rel: str) -> str | None:
        if (path := by_rel.get(rel)) is None:
            return None
        with path.open("rb") as f:
            return f.read(SDK_SNIFF_BYTES).decode("utf-8", errors="replace")

    return guess_space_sdk((f.rel for f in files), head(CARD), head("app.py"))


def gitignore_text(files: Sequence[LocalFile]) -> str | None:
    """The `.gitignore` this push sends, if any: the Hub ignores what it lists from this commit on,
    so it must apply to the files committed with it, not only to later pushes."""
    for f in files:
        if f.rel == GITIGNORE and f.path is not None:
            return f.path.read_bytes()[:GITIGNORE_MAX_BYTES].decode("utf-8", errors="replace")
    return None
