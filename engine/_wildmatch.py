"""git's path patterns, as `.gitattributes` and `.gitignore` use them (pure).

Shared by the server (preupload's LFS and ignore answers) and push (a dry run shows what the
Hub will ignore), so that both read a pattern the same way.
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache


@lru_cache(maxsize=1024)
def _path_pattern(pattern: str) -> re.Pattern[str]:
    # Enough of git's wildmatch: `**` crosses folders, `*` and `?` do not.
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def path_matches(pattern: str, path: str) -> bool:
    """Whether a git pattern applies to `path` (a `/`-separated repo path)."""
    if "/" not in pattern.rstrip("/"):
        # Git matches a slash-less pattern against the file name at any depth.
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    return _path_pattern(pattern.lstrip("/")).match(path) is not None


def gitignored(path: str, gitignore: str | None) -> bool:
    """Whether `.gitignore` text ignores the file at `path`: the last matching line wins, `!`
    negates; a pattern that names a folder (`build`, `logs/debug`, `cache/`) ignores everything
    under it, and one ending in `/` names only folders."""
    folders = path.split("/")[:-1]
    prefixes = ["/".join(folders[: i + 1]) for i in range(len(folders))]
    ignored = False
    for raw in (gitignore or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        folder_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        if not pattern:
            continue
        hit = any(path_matches(pattern, p) for p in prefixes) or (
            not folder_only and path_matches(pattern, path)
        )
        if hit:
            ignored = not negate
    return ignored
