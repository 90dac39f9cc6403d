"""Per-file digests (git blob sha1, sha256, binary sample) cached by file identity.

A file's identity is (path, size, mtime_ns, inode): when any of them changes the cached
digests no longer apply and the file is read again. Digests of large files survive restarts
in `<root>/.batuta/hashes.json`, so a multi-GiB model is hashed once per content, not per run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from engine.server._rules import SAMPLE_BYTES, git_blob_header

READ_CHUNK_BYTES = 1024 * 1024
PERSIST_MIN_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileDigest:
    """What we know about one version of one file."""

    size: int
    mtime_ns: int
    ino: int
    binary_sample: bool  # a NUL byte in the first 512 bytes
    sha1: str | None = None  # git blob sha1 of the content
    sha256: str | None = None

    def matches(self, st: os.stat_result) -> bool:
        return (self.size, self.mtime_ns, self.ino) == (st.st_size, st.st_mtime_ns, st.st_ino)


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino


class HashCache:
    """Thread-safe digest cache, with a reverse index from sha256 to the files holding it."""

    def __init__(self, root: Path, persist_file: Path | None = None) -> None:
        self._root = root
        self._persist_file = persist_file
        self._lock = threading.Lock()
        self._entries: dict[str, FileDigest] = {}
        self._by_sha256: dict[str, set[str]] = {}
        # Hardlinked copies (branches, LFS objects placed in trees) share one inode: one hash.
        self._by_inode: dict[tuple[int, int], FileDigest] = {}
        self._loaded_sig: tuple[int, int] | None = None
        self._load()

    def lookup(self, path: str, st: os.stat_result) -> FileDigest | None:
        with self._lock:
            d = self._entries.get(path)
            if d is not None and d.matches(st):
                return d
            d = self._by_inode.get((st.st_dev, st.st_ino))
        if d is not None and d.matches(st):
            self._store(path, d, st.st_dev)
            return d
        # Another process sharing the root (a harness, a second server) may have hashed it.
        if self._load():
            return self.lookup(path, st)
        return None

    def sample(self, path: str, st: os.stat_result) -> FileDigest:
        """The cached digest, creating it from the file's first 512 bytes if needed."""
        if (d := self.lookup(path, st)) is not None:
            return d
        with open(path, "rb") as f:
            head = f.read(SAMPLE_BYTES)
            fst = os.fstat(f.fileno())
        d = FileDigest(*_identity(fst), binary_sample=b"\x00" in head)
        self._store(path, d, fst.st_dev)
        return d

    def compute(self, path: str, *, sha1: bool, sha256: bool) -> FileDigest:
        """Read the file once and add the requested digests (blocking; run big files in a thread)."""
        with open(path, "rb") as f:
            before = os.fstat(f.fileno())
            known = self.lookup(path, before)
            want1 = sha1 and (known is None or known.sha1 is None)
            want256 = sha256 and (known is None or known.sha256 is None)
            h1 = hashlib.sha1(git_blob_header(before.st_size), usedforsecurity=False) if want1 else None
            h256 = hashlib.sha256() if want256 else None
            head = b""
            if h1 is None and h256 is None:
                head = f.read(SAMPLE_BYTES) if known is None else b""
            else:
                first = True
                while chunk := f.read(READ_CHUNK_BYTES):
                    if first:
                        head, first = chunk[:SAMPLE_BYTES], False
                    if h1 is not None:
                        h1.update(chunk)
                    if h256 is not None:
                        h256.update(chunk)
            after = os.fstat(f.fileno())
        base = known or FileDigest(*_identity(before), binary_sample=b"\x00" in head)
        d = replace(
            base,
            sha1=h1.hexdigest() if h1 is not None else base.sha1,
            sha256=h256.hexdigest() if h256 is not None else base.sha256,
        )
        # A file rewritten while we read it gets no entry: its next stat will not match anyway.
        if _identity(before) == _identity(after):
            self._store(path, d, before.st_dev)
            if d.size >= PERSIST_MIN_BYTES and (want1 or want256):
                self.save()
        return d

    def record(self, path: str, digest: FileDigest, dev: int) -> None:
        """Register digests known without reading the file (e.g. verified while it was uploaded)."""
        self._store(path, digest, dev)

    def paths_for_sha256(self, sha256: str) -> list[str]:
        with self._lock:
            return sorted(self._by_sha256.get(sha256, ()))

    def _store(self, path: str, d: FileDigest, dev: int | None) -> None:
        with self._lock:
            if dev is not None:
                self._by_inode[(dev, d.ino)] = d
            old = self._entries.get(path)
            if old is not None and old.sha256 is not None:
                self._by_sha256.get(old.sha256, set()).discard(path)
            self._entries[path] = d
            if d.sha256 is not None:
                self._by_sha256.setdefault(d.sha256, set()).add(path)

    def save(self) -> None:
        if self._persist_file is None:
            return
        self._load()  # keep what other processes sharing this root saved
        with self._lock:
            data = {
                os.path.relpath(p, self._root): [d.size, d.mtime_ns, d.ino, d.binary_sample, d.sha1, d.sha256]
                for p, d in self._entries.items()
                if d.size >= PERSIST_MIN_BYTES
            }
        tmp = self._persist_file.with_name(f"{self._persist_file.name}.{threading.get_ident()}.tmp")
        with contextlib.suppress(OSError):
            self._persist_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self._persist_file)

    def _load(self) -> bool:
        """Merge the persisted digests if the file changed since we last read it."""
        if self._persist_file is None:
            return False
        try:
            st = self._persist_file.stat()
            if (st.st_mtime_ns, st.st_size) == self._loaded_sig:
                return False
            self._loaded_sig = (st.st_mtime_ns, st.st_size)
            data = json.loads(self._persist_file.read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(data, dict):
            return False
        for rel, row in data.items():
            try:
                size, mtime_ns, ino, binary, sha1, sha256 = row
                d = FileDigest(int(size), int(mtime_ns), int(ino), bool(binary), sha1, sha256)
            except (TypeError, ValueError):
                continue
            path = str(self._root / rel)
            with self._lock:
                known = path in self._entries
            if not known:  # what we hashed ourselves is at least as fresh
                self._store(path, d, None)
        return True
