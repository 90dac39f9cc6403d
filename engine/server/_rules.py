"""Pure rules of the Hub's git model: LFS classification, pointer files, object ids.

Nothing here touches sockets or the event loop; the store and the write routes share these
functions so that preupload's `uploadMode` and the way a file is later served always agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache

from engine._models import repo_path_ok
from engine._wildmatch import path_matches

MiB = 1024 * 1024

LFS_SIZE_THRESHOLD_BYTES = 10 * MiB
SAMPLE_BYTES = 512
LFS_ATTRS = "filter=lfs diff=lfs merge=lfs -text"

# The patterns the Hub writes into the `.gitattributes` of every new repo.
DEFAULT_LFS_PATTERNS: tuple[str, ...] = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gguf", "*.gz", "*.h5", "*.joblib",
    "*.lfs.*", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet",
    "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*",
    "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
)  # fmt: skip

DEFAULT_GITATTRIBUTES = "".join(f"{p} {LFS_ATTRS}\n" for p in DEFAULT_LFS_PATTERNS)


@lru_cache(maxsize=256)
def _parse_gitattributes(text: str) -> tuple[tuple[str, bool | None], ...]:
    """Turn `.gitattributes` text into (pattern, lfs?) rules; None means 'says nothing about filter'."""
    rules: list[tuple[str, bool | None]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, *attrs = line.split()
        verdict: bool | None = None
        for attr in attrs:
            if attr == "filter=lfs":
                verdict = True
            elif attr in ("-filter", "!filter") or attr.startswith("filter="):
                verdict = False
        rules.append((pattern, verdict))
    return tuple(rules)


def lfs_by_attributes(path: str, gitattributes: str | None) -> bool | None:
    """The verdict of `.gitattributes` (the Hub defaults when the repo has none); last match wins."""
    verdict: bool | None = None
    for pattern, says in _parse_gitattributes(
        gitattributes if gitattributes is not None else DEFAULT_GITATTRIBUTES
    ):
        if says is not None and path_matches(pattern, path):
            verdict = says
    return verdict


def is_lfs(
    path: str,
    size: int,
    sample: bytes,
    gitattributes: str | None,
    *,
    size_threshold: int = LFS_SIZE_THRESHOLD_BYTES,
) -> bool:
    """Decide whether the Hub would store this file in LFS.

    True when `.gitattributes` (or, without one, the Hub's default patterns) marks the path
    `filter=lfs`, when the file is `size_threshold` bytes or more, or when its first 512 bytes
    hold a NUL byte. `.gitattributes` itself and empty files are never LFS.
    """
    if path == ".gitattributes" or size == 0:
        return False
    if lfs_by_attributes(path, gitattributes):
        return True
    return size >= size_threshold or b"\x00" in sample[:SAMPLE_BYTES]


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that stands in the git tree for an LFS object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def git_blob_header(size: int) -> bytes:
    return b"blob %d\x00" % size


def git_blob_sha1(data: bytes) -> str:
    """Git's object id of a blob holding `data`."""
    return hashlib.sha1(git_blob_header(len(data)) + data, usedforsecurity=False).hexdigest()


def commit_id(entries: Iterable[tuple[str, str]]) -> str:
    """A deterministic 40-hex commit id for a tree given as (path, blob oid) pairs."""
    h = hashlib.sha1(b"batuta-tree-v1\n", usedforsecurity=False)
    for path, oid in sorted(entries):
        h.update(f"{path}\x00{oid}\n".encode())
    return h.hexdigest()


def tree_oid(children: Iterable[tuple[str, str]]) -> str:
    """A deterministic 40-hex id for a folder, from its (name, oid) children."""
    h = hashlib.sha1(b"batuta-dir-v1\n", usedforsecurity=False)
    for name, oid in sorted(children):
        h.update(f"{name}\x00{oid}\n".encode())
    return h.hexdigest()


def mongo_id(key: str) -> str:
    """A stable 24-hex `_id` for a repo, the shape of the Hub's Mongo ids."""
    return hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:24]


def iso_date(ts: float) -> str:
    """`2024-03-12T10:01:02.000Z`: the Hub's date format (the official parser needs the `Z`)."""
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


# Stored at <root>/<type>/<namespace>/<name>/<path>: this leaves the root and the repo id room
# under Linux's 4096-byte PATH_MAX.
MAX_REPO_PATH_BYTES = 3072


def valid_repo_path(path: str) -> bool:
    """A file path a commit may write (engine/_models.py `repo_path_ok`), and the store can: no
    `.batuta` part (the store ignores it, the file would vanish); each part a file name the disk
    takes."""
    if not repo_path_ok(path) or len(path.encode("utf-8")) > MAX_REPO_PATH_BYTES:
        return False
    return all(p != ".batuta" and len(p.encode("utf-8")) <= 255 for p in path.split("/"))
