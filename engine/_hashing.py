"""Block-wise file digests on worker threads, with a persistent cache of what was already hashed.

A push must compare every local file with the remote tree's oids: the sha256 for LFS files and
the git blob sha1 (`sha1(b"blob <size>\\0" + content)`) for regular ones. Hashing a multi-GiB
folder on every run is what makes the official client slow to re-push, so digests are kept in
`$HF_HOME/batuta/hashes.sqlite`, keyed by the absolute path and the file's (size, mtime_ns,
inode). A file whose key is unchanged costs one indexed lookup instead of a read. Not in the hub
cache: the official `hf cache` scan reports any folder there that is not a repo as corrupt.

hashlib releases the GIL on large updates, so one thread per core hashes at full speed; the
threads run under a CapacityLimiter sized by `EngineConfig.hash_workers` (every core by default).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import anyio
import anyio.from_thread
import anyio.to_thread

from engine._errors import UsageError
from engine._events import EventSink, FileHashed, discard
from engine._select import match_globs

BLOCK_BYTES = 4 * 1024 * 1024
# Progress from a worker thread is reported this often; finer would cost a loop hop per block.
REPORT_EVERY_BYTES = 64 * 1024 * 1024
# A file written this recently may change again within the same mtime tick without its key
# changing (git's "racy clean" problem), so its digest is not cached.
RACY_WINDOW_S = 1.0
CACHE_FILE = Path("batuta") / "hashes.sqlite"  # under HF_HOME, beside huggingface_hub's `xet/`
_OLD_CACHE_DIR = ".batuta"  # where it was, under the hub cache, before 2026-11-26
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS digests ("
    " path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ino INTEGER NOT NULL,"
    " sha256 TEXT, sha1 TEXT)",
    # File versions the secret scanner found clean, and which scanner (rules) said so.
    "CREATE TABLE IF NOT EXISTS clean_scans ("
    " path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ino INTEGER NOT NULL,"
    " scanner TEXT NOT NULL)",
)
_LOOKUP_CHUNK = 500  # stays below SQLite's host-parameter limit
Action = Literal["add", "update", "delete", "unchanged", "ignored"]
_VCS_DIRS = frozenset({".git", ".hg", ".svn"})


class FileKey(NamedTuple):
    """What identifies one version of a file without reading it."""

    path: str  # absolute
    size: int
    mtime_ns: int
    ino: int

    @classmethod
    def of(cls, path: Path, st: os.stat_result | None = None) -> FileKey:
        st = st or path.stat()
        return cls(str(path.absolute()), st.st_size, st.st_mtime_ns, st.st_ino)


class Digest(NamedTuple):
    """The digests known for one file version; either may be missing until asked for."""

    size: int
    sha256: str | None = None
    sha1: str | None = None  # git blob sha1

    def has(self, *, sha256: bool, sha1: bool) -> bool:
        return (not sha256 or self.sha256 is not None) and (not sha1 or self.sha1 is not None)

    def merged(self, other: Digest) -> Digest:
        return self._replace(sha256=self.sha256 or other.sha256, sha1=self.sha1 or other.sha1)


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of `data`: what the Hub reports as the oid of a regular file."""
    h = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    h.update(data)
    return h.hexdigest()


def digest_bytes(data: bytes) -> Digest:
    return Digest(len(data), hashlib.sha256(data).hexdigest(), git_blob_sha1(data))


def hash_file(
    path: Path, *, sha256: bool, sha1: bool, progress: Callable[[int], None] | None = None
) -> Digest:
    """Read `path` once in BLOCK_BYTES blocks and return the asked digests (blocking; run on a thread).

    `progress(n)` is called every REPORT_EVERY_BYTES and at the end with the bytes read since the
    last call. Raises OSError when the file cannot be read, ValueError when it changed size.
    """
    size = path.stat().st_size
    h256 = hashlib.sha256() if sha256 else None
    h1 = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False) if sha1 else None
    hashers = [h for h in (h256, h1) if h is not None]
    buf = bytearray(BLOCK_BYTES)
    view = memoryview(buf)
    total = pending = 0
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            chunk = view[:n]
            for h in hashers:
                h.update(chunk)
            total += n
            pending += n
            if progress is not None and pending >= REPORT_EVERY_BYTES:
                progress(pending)
                pending = 0
    if progress is not None and pending:
        progress(pending)
    if total != size:
        # The git header already committed to `size`; a sha1 over other bytes would be wrong.
        raise ValueError(f"{path} changed size while being hashed")
    return Digest(size, h256.hexdigest() if h256 else None, h1.hexdigest() if h1 else None)


def _settled(keys: Iterable[FileKey], now_s: float | None) -> set[FileKey]:
    """The keys written before the racy window (RACY_WINDOW_S): only those may be remembered."""
    now_ns = int((time.time() if now_s is None else now_s) * 1e9)
    racy_ns = int(RACY_WINDOW_S * 1e9)
    return {k for k in keys if now_ns - k.mtime_ns >= racy_ns}


class HashCache:
    """Digests of file versions, persisted in SQLite. Use from one thread at a time.

    Any SQLite trouble (read-only disk, corrupt file, a lock held too long) turns the cache into
    a no-op: it only ever saves work, so it must never fail a push.
    """

    def __init__(self, db_path: Path | None) -> None:
        self.path = db_path
        self._db: sqlite3.Connection | None = None
        if db_path is None:
            return
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread=False: calls hop between worker threads, never concurrently.
            self._db = sqlite3.connect(db_path, timeout=5.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._db.commit()
        except (sqlite3.Error, OSError):
            self.close()

    @classmethod
    def under(cls, hf_home: Path, hub_cache: Path | None = None) -> HashCache:
        """The cache in `hf_home`; one left by an earlier version in `hub_cache` is moved there."""
        path = hf_home / CACHE_FILE
        if hub_cache is not None:
            _adopt_old_cache(hub_cache / _OLD_CACHE_DIR, path)
        return cls(path)

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _matching(
        self, keys: Sequence[FileKey], sql: str, params: Sequence[object] = ()
    ) -> Iterator[tuple[FileKey, tuple[Any, ...]]]:
        """Rows of `sql` (`... path IN ({marks})`, selecting path, size, mtime_ns, ino first) whose
        size, mtime and inode still match their key, with the remaining columns.

        Raises sqlite3.Error; callers turn the cache off on it.
        """
        assert self._db is not None
        by_path = {k.path: k for k in keys}
        paths = list(by_path)
        for i in range(0, len(paths), _LOOKUP_CHUNK):
            part = paths[i : i + _LOOKUP_CHUNK]
            for path, size, mtime_ns, ino, *rest in self._db.execute(
                sql.format(marks=",".join("?" * len(part))), [*params, *part]
            ):
                key = by_path[path]
                if (size, mtime_ns, ino) == (key.size, key.mtime_ns, key.ino):
                    yield key, tuple(rest)

    def lookup(self, keys: Sequence[FileKey]) -> dict[FileKey, Digest]:
        """The cached digests of those `keys` whose size, mtime and inode still match."""
        if self._db is None or not keys:
            return {}
        sql = "SELECT path, size, mtime_ns, ino, sha256, sha1 FROM digests WHERE path IN ({marks})"
        try:
            return {key: Digest(key.size, rest[0], rest[1]) for key, rest in self._matching(keys, sql)}
        except sqlite3.Error:
            self.close()
            return {}

    def store(self, items: Mapping[FileKey, Digest], *, now_s: float | None = None) -> int:
        """Record digests (merging with what is known); returns how many rows were written."""
        if self._db is None or not items:
            return 0
        settled = _settled(items, now_s)
        rows = [
            (k.path, k.size, k.mtime_ns, k.ino, d.sha256, d.sha1) for k, d in items.items() if k in settled
        ]
        try:
            with self._db:
                self._db.executemany(
                    "INSERT INTO digests (path, size, mtime_ns, ino, sha256, sha1) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(path) DO UPDATE SET size=excluded.size, mtime_ns=excluded.mtime_ns,"
                    " ino=excluded.ino, sha256=excluded.sha256, sha1=excluded.sha1",
                    rows,
                )
        except sqlite3.Error:
            self.close()
            return 0
        return len(rows)

    def clean_scans(self, keys: Sequence[FileKey], scanner: str) -> set[FileKey]:
        """Those `keys` that `scanner` already found free of secrets (same size, mtime and inode)."""
        if self._db is None or not keys:
            return set()
        sql = "SELECT path, size, mtime_ns, ino FROM clean_scans WHERE scanner = ? AND path IN ({marks})"
        try:
            return {key for key, _ in self._matching(keys, sql, [scanner])}
        except sqlite3.Error:
            self.close()
            return set()

    def mark_clean(self, keys: Iterable[FileKey], scanner: str, *, now_s: float | None = None) -> None:
        if self._db is None:
            return
        rows = [(k.path, k.size, k.mtime_ns, k.ino, scanner) for k in _settled(keys, now_s)]
        try:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO clean_scans VALUES (?, ?, ?, ?, ?)", rows)
        except sqlite3.Error:
            self.close()


class HashJob(NamedTuple):
    """One file to digest: `rel` names it in events, `path` is where it is read from."""

    rel: str
    path: Path
    key: FileKey
    sha256: bool
    sha1: bool


def _adopt_old_cache(old_dir: Path, path: Path) -> None:
    # Best effort: the digests are only a saving, and a folder that cannot move stays harmless.
    if not old_dir.is_dir():
        return  # nearly always: one stat per push, not five
    old = old_dir / path.name
    with contextlib.suppress(OSError):
        if old.is_file() and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old, path)
        for leftover in (old, old.with_name(old.name + "-wal"), old.with_name(old.name + "-shm")):
            leftover.unlink(missing_ok=True)
        old_dir.rmdir()


class Hasher:
    """Digests files on worker threads, consulting and feeding a HashCache.

    ```python
    hasher = Hasher(HashCache.under(config.hf_home), workers=config.hash_workers, on_event=sink)
    digests = await hasher.digest_all(jobs, on_digest=lambda rel, digest: ...)
    ```
    Several `digest_all` calls may run at once (a push hashes ahead while it uploads): they share
    the worker limiter, so the hashing threads never exceed `workers` in total.
    """

    def __init__(self, cache: HashCache, *, workers: int, on_event: EventSink = discard) -> None:
        self.cache = cache
        self._limiter = anyio.CapacityLimiter(max(1, workers))
        # The cache is one SQLite connection: calls from concurrent digest_all() must take turns.
        self._cache_lock = anyio.Lock()
        self._on_event = on_event
        self.bytes_hashed = 0
        self.cache_hits = 0

    async def cached(self, jobs: Sequence[HashJob]) -> dict[str, Digest]:
        """What the cache already knows about `jobs`, by `rel`, without reading any file."""
        async with self._cache_lock:
            known = await anyio.to_thread.run_sync(self.cache.lookup, [j.key for j in jobs])
        return {j.rel: known[j.key] for j in jobs if j.key in known}

    async def digest_all(
        self,
        jobs: Iterable[HashJob],
        *,
        on_digest: Callable[[str, Digest], None] | None = None,
        known: Mapping[str, Digest] | None = None,
    ) -> dict[str, Digest]:
        """Digest every job (cache first), keyed by `rel`; store the new digests in the cache.

        `on_digest(rel, digest)` is called on the event loop as soon as each digest is known
        (cache hits first), so a caller can act on one file while others are still hashed.
        `known`: what `cached(jobs)` returned, when the caller already asked.
        Raises OSError when a file cannot be read; ValueError when one changed while hashed.
        """
        jobs = list(jobs)
        if known is None:
            known = await self.cached(jobs)
        out: dict[str, Digest] = {}
        todo = self.pending(jobs, known)
        pending_rels = {job.rel for job in todo}

        def done(rel: str, digest: Digest) -> None:
            out[rel] = digest
            if on_digest is not None:
                on_digest(rel, digest)

        for job in jobs:
            if job.rel not in pending_rels:
                self.cache_hits += 1
                self._on_event(FileHashed(job.rel, 0))
                done(job.rel, known[job.rel])
        fresh: dict[FileKey, Digest] = {}

        async def run(job: HashJob, partial: Digest | None) -> None:
            need256 = job.sha256 and (partial is None or partial.sha256 is None)
            need1 = job.sha1 and (partial is None or partial.sha1 is None)

            def report(n: int) -> None:
                anyio.from_thread.run_sync(self._report, job.rel, n)

            def work() -> tuple[Digest, bool]:
                digest = hash_file(job.path, sha256=need256, sha1=need1, progress=report)
                # A file touched while it was read must not be remembered under its old key.
                return digest, FileKey.of(job.path) == job.key

            digest, steady = await anyio.to_thread.run_sync(work, limiter=self._limiter)
            if partial is not None:
                digest = digest.merged(partial)
            if steady:
                fresh[job.key] = digest
            done(job.rel, digest)

        async with anyio.create_task_group() as tg:
            for job in todo:
                tg.start_soon(run, job, known.get(job.rel))
        if fresh:
            async with self._cache_lock:
                await anyio.to_thread.run_sync(self.cache.store, fresh)
        return out

    @staticmethod
    def pending(jobs: Iterable[HashJob], known: Mapping[str, Digest]) -> list[HashJob]:
        """The jobs the cache answers not at all, or without every digest they need."""
        return [j for j in jobs if not (j.rel in known and known[j.rel].has(sha256=j.sha256, sha1=j.sha1))]

    def _report(self, rel: str, n: int) -> None:
        self.bytes_hashed += n
        self._on_event(FileHashed(rel, n))


@dataclass(slots=True)
class LocalFile:
    """One file of a push: where it is, what it is, and (filled in later) what to do with it."""

    rel: str
    path: Path | None  # None for generated content
    size: int
    key: FileKey | None = None
    data: bytes | None = None  # generated content (the model card)
    digest: Digest | None = None
    sample: bytes = b""
    lfs: bool = False
    action: Action = "add"


def _check_name(rel: str) -> None:
    """Refuse, before anything is sent, a name the Hub cannot store (it would fail at commit time,
    after every upload): bytes that are not UTF-8, and backslashes."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise UsageError(
            f"cannot push '{shown}': file names must be UTF-8 (rename it, or leave it out with --exclude)"
        ) from None
    if "\\" in rel:
        raise UsageError(
            f"cannot push '{rel}': the Hub does not take '\\' in file names (rename it, or leave it out with --exclude)"
        )


def local_file(path: Path, rel: str) -> LocalFile | None:
    """The file at `path`, to be pushed as `rel`; None for what a repo cannot hold (a socket, a
    FIFO, a device). UsageError for a name the Hub refuses or a file that cannot be read."""
    _check_name(rel)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            return None
        # Opening proves readability (permissions, ACLs) before any request is made.
        with path.open("rb"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot read '{rel}': {(exc.strerror or str(exc)).lower()}") from exc
    return LocalFile(rel, path, st.st_size, key=FileKey.of(path, st))


def collect_files(folder: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[LocalFile]:
    """The files of `folder` to push, sorted by path. Raises UsageError for a missing, non-folder,
    empty or unreadable input, before anything is sent."""
    if not folder.exists():
        raise UsageError(f"folder '{folder}' does not exist")
    if not folder.is_dir():
        raise UsageError(f"'{folder}' is not a folder")
    out: list[LocalFile] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        prefix = base.relative_to(folder).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        # Pruned in place so os.walk never descends: version control, and huggingface_hub's own
        # upload metadata, exactly as upload_folder ignores them.
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in _VCS_DIRS and not (d == "huggingface" and prefix.endswith(".cache/"))
        )
        for name in filenames:
            rel = prefix + name
            if match_globs(rel, include, exclude) and (f := local_file(base / name, rel)) is not None:
                out.append(f)
    if not out:
        filt = " matching --include/--exclude" if include or exclude else ""
        raise UsageError(f"nothing to push: '{folder}' has no files{filt}")
    out.sort(key=lambda f: f.rel)
    return out
