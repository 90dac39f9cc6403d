"""The HF cache layout (hub-protocol.md §7) and the local-dir metadata (§7.6).

Everything here touches the file system but decides nothing about the network. Writes are
atomic (temp name, then rename), so a killed process never leaves a half-written ref,
metadata file or symlink behind.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine._errors import OfflineError, UsageError
from engine._models import RemoteFile, RepoRef

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by batuta (Hugging Face cache layout).\n"
)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def inside(root: Path, rel: str) -> Path:
    """`root/rel`, refusing it when a symlink in `root` leads it outside.

    `rel` is a repo path that passed `safe_relpath` (no `..`, not absolute: a server sending such
    a name is a ProtocolError there), so only a link already in the folder can lead out. That is
    the folder's doing, not the server's: UsageError naming the path and the link.
    """
    target = root / rel
    real_root = os.path.realpath(root)
    if _within(real_root, target.parent):
        return target
    link = root
    for part in Path(rel).parent.parts:
        link /= part
        if not _within(real_root, link):
            break
    raise UsageError(
        f"refusing '{rel}': {link} is a link leading outside {root}, to {os.path.realpath(link)}"
    )


def _within(real_root: str, path: Path) -> bool:
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


@functools.cache
def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def apply_umask_mode(path: Path) -> None:
    """Give a finished file the mode a fresh file would get (temp files are created 0600)."""
    os.chmod(path, 0o666 & ~_umask())


@dataclass(frozen=True, slots=True)
class RepoCache:
    """One repo's folder in the HF cache: blobs/, refs/, snapshots/, trees/ and its lock folder."""

    hub_cache: Path
    ref: RepoRef

    @property
    def folder(self) -> Path:
        return self.hub_cache / self.ref.cache_folder

    def blob(self, etag: str) -> Path:
        return self.folder / "blobs" / etag

    def snapshot(self, commit: str) -> Path:
        return self.folder / "snapshots" / commit

    def lock(self, etag: str) -> Path:
        return self.hub_cache / ".locks" / self.ref.cache_folder / f"{etag}.lock"

    def incomplete(self, etag: str) -> Path:
        return self.folder / "blobs" / f"{etag}.incomplete"

    def read_ref(self, revision: str) -> str | None:
        if COMMIT_RE.match(revision):
            return revision
        try:
            value = (self.folder / "refs" / revision).read_text()
        except OSError:
            return None
        return value if COMMIT_RE.match(value) else None

    def write_ref(self, revision: str, commit: str) -> None:
        if revision == commit:
            return
        path = self.folder / "refs" / revision
        with contextlib.suppress(OSError):
            if path.read_text() == commit:
                return
        atomic_write(path, commit.encode())  # no trailing newline: the official client reads it verbatim

    def link(self, commit: str, rel: str, etag: str) -> Path:
        """Point snapshots/<commit>/<rel> at blobs/<etag> with a relative symlink (atomic).

        `rel` has passed `safe_relpath`, and only batuta and the official client write inside
        snapshots/ (file symlinks, never folder symlinks), so a plain join cannot escape.
        """
        pointer = self.snapshot(commit) / rel
        target = os.path.relpath(self.blob(etag), pointer.parent)
        tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}.lnk")
        try:
            os.symlink(target, tmp)
        except FileNotFoundError:
            pointer.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, tmp)
        except FileExistsError:
            tmp.unlink()
            os.symlink(target, tmp)
        os.replace(tmp, pointer)
        return pointer

    def has_snapshot_file(self, commit: str, rel: str, etag: str) -> bool:
        pointer = self.snapshot(commit) / rel
        try:
            return (
                os.readlink(pointer) == os.path.relpath(self.blob(etag), pointer.parent) and pointer.exists()
            )
        except OSError:
            # Not a symlink: the official client copies files when symlinks are unsupported.
            return pointer.is_file()

    def write_tree(self, commit: str, files: Iterable[RemoteFile]) -> None:
        """trees/<commit>.json as the official 2.x client writes it (lets offline runs check completeness)."""
        write_tree_file(self.folder / "trees" / f"{commit}.json", files)

    def read_tree(self, commit: str) -> list[RemoteFile] | None:
        return read_tree_file(self.folder / "trees" / f"{commit}.json")

    def snapshot_files(self, commit: str) -> list[str]:
        root = self.snapshot(commit)
        out = []
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                out.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
        return sorted(out)

    def cached_files(self, revision: str, *, sizes: bool) -> tuple[str, list[RemoteFile]]:
        """Offline: the commit `revision` names here and its files, from the saved tree or else
        the snapshot folder (sizes from disk when `sizes`, else 0). OfflineError when absent."""
        commit = self.read_ref(revision)
        root = self.snapshot(commit) if commit is not None else None
        if commit is None or root is None or not root.is_dir():
            raise OfflineError(
                f"offline mode (HF_HUB_OFFLINE): {self.ref.repo_id}@{revision} is not in the cache"
            )
        files = self.read_tree(commit) or [
            RemoteFile(p, (root / p).stat().st_size if sizes else 0, "") for p in self.snapshot_files(commit)
        ]
        return commit, files

    def ensure_tag(self) -> None:
        tag = self.hub_cache / "CACHEDIR.TAG"
        if not tag.exists():
            with contextlib.suppress(OSError):
                atomic_write(tag, CACHEDIR_TAG.encode())


def write_tree_file(path: Path, files: Iterable[RemoteFile]) -> None:
    """A commit's file list in the official client's `trees/<commit>.json` format.

    A commit's tree never changes: an existing file is kept, not rewritten on every pull.
    """
    if path.exists():
        return
    entries: dict[str, dict[str, object]] = {}
    for f in sorted(files, key=lambda f: f.path):
        entry: dict[str, object] = {"size": f.size, "blob_id": f.blob_id}
        if f.lfs_sha256:
            entry.update(lfs_sha256=f.lfs_sha256, lfs_size=f.size)
        entries[f.path] = entry
    doc = {"format_version": 1, "files": entries}
    atomic_write(path, json.dumps(doc, indent=1).encode())


def read_tree_file(path: Path) -> list[RemoteFile] | None:
    try:
        doc = json.loads(path.read_text())
        files: Mapping[str, Mapping[str, object]] = doc["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [
        RemoteFile(
            path=p,
            size=int(str(e.get("size", 0))),
            blob_id=str(e.get("blob_id", "")),
            lfs_sha256=str(e["lfs_sha256"]) if e.get("lfs_sha256") else None,
        )
        for p, e in files.items()
    ]


@dataclass(frozen=True, slots=True)
class LocalDir:
    """A plain-folder destination (`-o DIR`) with the official local-dir metadata (§7.6)."""

    root: Path

    @property
    def meta_root(self) -> Path:
        return self.root / ".cache" / "huggingface"

    def target(self, rel: str) -> Path:
        return inside(self.root, rel)

    def metadata(self, rel: str) -> Path:
        return self.meta_root / "download" / f"{rel}.metadata"

    def lock(self, rel: str) -> Path:
        return self.meta_root / "download" / f"{rel}.lock"

    def incomplete(self, rel: str, etag: str) -> Path:
        return self.meta_root / "download" / f"{rel}.{etag}.incomplete"

    def _ref(self, repo: RepoRef, revision: str) -> Path:
        # Per repo: two repos pulled into one folder must not answer for each other.
        return self.meta_root / "refs" / repo.repo_type / repo.repo_id / revision

    def is_current(self, rel: str, etag: str, size: int) -> bool:
        """True when the file exists and its metadata says it holds `etag` and was not touched since.

        The official client trusts the mtime alone; a file of the wrong size (a copy that kept an
        older mtime, `cp -p` or `rsync -t`) is not current whatever its mtime says.
        """
        target, meta = self.root / rel, self.metadata(rel)
        try:
            commit, stored, stamp = meta.read_text().splitlines()[:3]
            st = target.stat()
        except (OSError, ValueError):
            return False
        if st.st_size != size or not stat.S_ISREG(st.st_mode):
            return False
        return bool(commit) and stored == etag and st.st_mtime <= float(stamp) + 1

    # The revision a pull resolved and its file list, beside the official metadata, so that an
    # offline pull into the folder can tell a complete snapshot from a partial one.
    def write_snapshot(self, repo: RepoRef, revision: str, commit: str, files: Iterable[RemoteFile]) -> None:
        write_tree_file(self.meta_root / "trees" / f"{commit}.json", files)
        ref = self._ref(repo, revision)
        with contextlib.suppress(OSError):
            if ref.read_text() == commit:
                return
        atomic_write(ref, commit.encode())

    def snapshot_of(self, repo: RepoRef, revision: str) -> tuple[str, list[RemoteFile]] | None:
        """(commit, files) recorded for `revision` of `repo` by a pull into this folder, if any."""
        try:
            commit = self._ref(repo, revision).read_text()
        except OSError:
            return None
        files = (
            read_tree_file(self.meta_root / "trees" / f"{commit}.json") if COMMIT_RE.match(commit) else None
        )
        return None if files is None else (commit, files)

    def commit_of(self, rel: str) -> str:
        """The commit `rel` was pulled at, from its metadata ("" when unknown)."""
        try:
            return self.metadata(rel).read_text().split("\n", 1)[0].strip()
        except OSError:
            return ""

    def write_metadata(self, rel: str, commit: str, etag: str) -> None:
        """Record that `rel` is at `etag` (after `ensure_layout`, which the pull calls once)."""
        atomic_write(self.metadata(rel), f"{commit}\n{etag}\n{time.time()}\n".encode())

    def ensure_layout(self) -> None:
        ignore = self.meta_root / ".gitignore"
        if not ignore.exists():
            atomic_write(ignore, b"*")


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[bool]:
    """A non-blocking flock on `path` (the official client's filelock uses the same files).

    Yields False when another process holds it; the caller then waits and retries.
    """
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
