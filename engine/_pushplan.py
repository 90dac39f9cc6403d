"""Pure decisions of a push: which digests a file needs, whether it changed, LFS guesses for
dry runs, commit titles, and how operations are split into commits."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from engine._errors import UsageError
from engine._hashing import Digest, LocalFile, digest_bytes
from engine._models import RemoteFile, repo_path_ok

# Commit splitting rule: a commit holds at most MAX_COMMIT_OPS operations (adds + deletes) and
# at most MAX_COMMIT_INLINE_BYTES of regular (non-LFS) content; LFS files count only as an
# operation since the commit carries a 100-byte reference. The official client's documented
# limits are 25 000 LFS files and 1 GB inline per commit; ours are far below, so that one commit
# stays a short request and an interrupted large push loses little.
MAX_COMMIT_OPS = 1000
MAX_COMMIT_INLINE_BYTES = 64 * 1024 * 1024
# The Hub's own rules (§8.2) for dry-run guesses; the real decision is preupload's: the size,
# a NUL byte in the sample, or a pattern of the `.gitattributes` every new Hub repo starts with.
LFS_GUESS_BYTES = 10 * 1024 * 1024
LFS_SUFFIXES = (
    ".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gguf", ".gz", ".h5", ".joblib", ".mlmodel",
    ".model", ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet", ".pb", ".pickle", ".pkl", ".pt",
    ".pth", ".rar", ".safetensors", ".tar", ".tflite", ".tgz", ".wasm", ".xz", ".zip", ".zst",
)  # fmt: skip


def plan_commits(
    adds: Sequence[LocalFile], deletes: Sequence[str]
) -> list[tuple[list[LocalFile], list[str]]]:
    """Split operations into commits of at most MAX_COMMIT_OPS operations and
    MAX_COMMIT_INLINE_BYTES of inline content; deletions ride in the last commits so nothing is
    removed before every upload has landed."""
    batches: list[tuple[list[LocalFile], list[str]]] = []
    cur: list[LocalFile] = []
    inline = 0
    for f in adds:
        weight = 0 if f.lfs else f.size
        if cur and (len(cur) >= MAX_COMMIT_OPS or inline + weight > MAX_COMMIT_INLINE_BYTES):
            batches.append((cur, []))
            cur, inline = [], 0
        cur.append(f)
        inline += weight
    dels = list(deletes)
    if cur or not batches:
        room = MAX_COMMIT_OPS - len(cur)
        batches.append((cur, dels[:room]))
        dels = dels[room:]
    while dels:
        batches.append(([], dels[:MAX_COMMIT_OPS]))
        dels = dels[MAX_COMMIT_OPS:]
    return [b for b in batches if b[0] or b[1]]


def commit_message(message: str | None, adds: int, deletes: int) -> str:
    """The commit title: the user's `--message`, else a summary of what the commit does."""
    if message:
        return message
    if not adds:
        return f"Delete {deletes} file{'s' if deletes != 1 else ''} with batuta"
    tail = f" and delete {deletes}" if deletes else ""
    return f"Upload {adds} file{'s' if adds != 1 else ''}{tail} with batuta"


def digests_needed(f: LocalFile, r: RemoteFile | None) -> tuple[bool, bool]:
    """(sha256, sha1) to compute for `f`: only what the comparison and an LFS upload need.

    A size change already proves a change; a remote LFS file is compared by sha256 and a regular
    one by git sha1; sha256 is also what an LFS upload is addressed by.
    """
    regular_same_size = r is not None and not r.is_lfs and r.size == f.size
    return not regular_same_size, regular_same_size or f.size < LFS_GUESS_BYTES


def guess_lfs(f: LocalFile, r: RemoteFile | None) -> bool:
    if r is not None and r.is_lfs:
        return True
    big_or_binary = f.size >= LFS_GUESS_BYTES or b"\0" in f.sample
    return f.size > 0 and (big_or_binary or f.rel.lower().endswith(LFS_SUFFIXES))


def same_content(f: LocalFile, r: RemoteFile, digest: Digest | None = None) -> bool:
    """Whether `f` (its digest, or `digest` when given) already is the remote file `r`."""
    d = digest or f.digest
    if d is None or f.size != r.size:
        return False
    return d.sha256 == r.lfs_sha256 if r.is_lfs else d.sha1 == r.blob_id


def moved_paths(
    paths: Iterable[str], before: Mapping[str, RemoteFile], after: Mapping[str, RemoteFile]
) -> list[str]:
    """The `paths` whose remote file differs between two trees (added, removed or changed).

    A push whose parent moved may commit onto the new head only when none of its paths moved:
    then the other commit and this one touch different files, and the order does not matter.
    """

    def identity(f: RemoteFile | None) -> tuple[str, int] | None:
        return None if f is None else (f.etag, f.size)

    return sorted(p for p in set(paths) if identity(before.get(p)) != identity(after.get(p)))


SPACE_SDKS = ("gradio", "streamlit", "docker", "static")
_FRONT_SDK = re.compile(r"^sdk:\s*['\"]?([A-Za-z]+)", re.MULTILINE)
_IMPORTS = re.compile(r"^\s*(?:import|from)\s+(gradio|streamlit)\b", re.MULTILINE)


def guess_space_sdk(names: Iterable[str], readme: str | None, app_py: str | None) -> str:
    """The SDK a new Space is created with, from what the folder holds.

    The README's `sdk:` wins (the Hub reads it from there on anyway); then what app.py imports,
    a Dockerfile, or a lone index.html. Otherwise gradio, as `hf upload` creates Spaces: the
    Space is built from its files, so a wrong guess shows at once on its page.
    """
    if readme is not None and readme.startswith("---"):
        front = readme.split("\n---", 1)[0]
        if (m := _FRONT_SDK.search(front)) and m[1].lower() in SPACE_SDKS:
            return m[1].lower()
    if app_py is not None and (m := _IMPORTS.search(app_py)):
        return m[1]
    top = {n for n in names if "/" not in n}
    if "Dockerfile" in top:
        return "docker"
    if "index.html" in top and "app.py" not in top:
        return "static"
    return "gradio"


def repo_folder(path_in_repo: str) -> str:
    """`path_in_repo` as a clean repo path ("" for the root); UsageError for one the Hub cannot
    hold (`..`, `.git`, a backslash, a control character, bytes that are not UTF-8)."""
    clean = path_in_repo.strip("/")
    if clean and not repo_path_ok(clean):
        raise UsageError(f"--path-in-repo {path_in_repo!r} is not a path a repo can hold")
    return clean


def place_in_repo(files: Sequence[LocalFile], prefix: str, *, as_file: bool) -> None:
    """Turn the files' local paths into their repo paths under the repo folder `prefix`; with
    `as_file` (one file, `--path-in-repo` not ending in `/`), the file's path is `prefix` itself."""
    if as_file and prefix:
        files[0].rel = prefix
        return
    for f in files:
        f.rel = f"{prefix}/{f.rel}" if prefix else f.rel


def under(prefix: str, path: str) -> str | None:
    """`path` relative to the repo folder `prefix`, or None when it lies outside it."""
    if not prefix:
        return path
    return path[len(prefix) + 1 :] if path.startswith(prefix + "/") else None


def as_hashed(f: LocalFile, data: bytes) -> bool:
    """Whether `data`, read for the commit, is the content whose digest the push compared."""
    if f.digest is None:
        return True
    got = digest_bytes(data)
    return f.digest.sha1 in (None, got.sha1) and f.digest.sha256 in (None, got.sha256)
