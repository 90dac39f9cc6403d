"""The push's secret scan inside archives and compressed files.

A project folder tarred with its `.env`, a checkpoint zipped with `training_args.bin` (the
Trainer's pickle, with `hub_token` in it) or a `.jsonl.gz` holding a token would otherwise pass:
compressed bytes hold no readable text. Members are reported as `archive!/member`.

What is read, and why it is bounded: datasets ship as thousands of archive shards, and a full
read of each would cost more than the push's hashing.
- zip and plain tar: every member name (a zip's directory, a tar's headers, seeking past the
  data); the content of members up to MEMBER_MAX_BYTES, ARCHIVE_CONTENT_BYTES in all.
- gzip, bzip2, xz (a tar inside, or a single file): the first ARCHIVE_STREAM_BYTES of the
  decompressed stream, since reaching a later member means decompressing everything before it.
  A compressed tar's members past that point are not scanned.
- Media members (images, audio, video) are scanned by name only; archives inside archives are
  searched like any binary file, not opened.
Zstandard, 7z and rar need libraries outside the standard one; their first bytes only are read,
as before (engine/_secretfiles.py).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, NamedTuple

from engine._secrets import Finding, scan_name

ARCHIVE_STREAM_BYTES = 64 << 20  # decompressed bytes read from a gzip/bzip2/xz file (~0.2 s)
ARCHIVE_CONTENT_BYTES = 16 << 20  # member bytes scanned per archive
MEMBER_MAX_BYTES = 16 << 20
_MEDIA_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ico", ".heic", ".avif",
    ".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".mp4", ".m4v", ".mov", ".avi", ".mkv",
    ".webm",
)  # fmt: skip
_STREAMS: dict[str, Callable[[BinaryIO], io.BufferedIOBase]] = {
    ".gz": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
    ".tgz": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
    ".bz2": lambda f: bz2.BZ2File(f),
    ".tbz2": lambda f: bz2.BZ2File(f),
    ".xz": lambda f: lzma.LZMAFile(f),
    ".txz": lambda f: lzma.LZMAFile(f),
}
# What a truncated, corrupt or wrongly named archive raises while it is read; a zip member in a
# method Python lacks (Deflate64, strong encryption) raises NotImplementedError, one that needs
# a password RuntimeError.
_BROKEN = (
    OSError, EOFError, ValueError, zlib.error, zipfile.BadZipFile, tarfile.TarError, lzma.LZMAError,
    NotImplementedError, RuntimeError,
)  # fmt: skip
_TAR_MAGIC_AT = 257  # "ustar" in a POSIX tar header

# Content goes to this callback: (stream, shown path) -> findings. It is the file scanner's own
# (text, UTF-16 or binary, by the same sniffing), passed in to keep one copy of it.
ScanStream = Callable[[BinaryIO, str], list[Finding]]


def is_archive(path: str) -> bool:
    name = path.lower()
    return name.endswith((".zip", ".tar", *_STREAMS))


class ArchiveScan(NamedTuple):
    findings: list[Finding]
    complete: bool  # False: part of it could not be read (truncated, corrupt, unsupported)


def scan_archive(f: BinaryIO, path: str, scan_stream: ScanStream) -> ArchiveScan | None:
    """Findings in the archive or compressed file `f` (named `path`), or None when it does not
    open as one (the caller then scans it as any binary file). What could be read before a
    part broke is kept; the caller adds a scan of the raw bytes then."""
    name = path.lower()
    out = _Found()
    try:
        if name.endswith(".zip"):
            _scan_zip(f, path, scan_stream, out)
        elif name.endswith(".tar"):
            with tarfile.open(fileobj=f, mode="r:") as tar:
                _scan_tar(tar, path, scan_stream, out)
        else:
            opener = next(o for suffix, o in _STREAMS.items() if name.endswith(suffix))
            if not _scan_compressed(opener(f), path, scan_stream, out):
                return None
    except _BROKEN:
        if not out.opened:
            return None
        out.complete = False
    return ArchiveScan(out.findings, out.complete)


class _Found:
    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.complete = True
        self.opened = False  # it parsed as this kind of archive


def _scan_zip(f: BinaryIO, path: str, scan_stream: ScanStream, out: _Found) -> None:
    budget = ARCHIVE_CONTENT_BYTES
    with zipfile.ZipFile(f) as zf:
        out.opened = True
        for info in zf.infolist():
            if info.is_dir():
                continue
            shown = f"{path}!/{info.filename}"
            if (by_name := scan_name(shown)) is not None:
                out.findings.append(by_name)
            if not _worth_reading(info.filename, info.file_size, budget) or info.flag_bits & 0x1:
                continue  # bit 0: encrypted, unreadable without the password
            try:
                with zf.open(info) as member:
                    data = member.read(min(MEMBER_MAX_BYTES, budget))  # not trusting file_size
            except _BROKEN:
                out.complete = False  # this member only: the others are read all the same
                continue
            budget -= len(data)
            out.findings += scan_stream(io.BytesIO(data), shown)


def _scan_tar(tar: tarfile.TarFile, path: str, scan_stream: ScanStream, out: _Found) -> None:
    out.opened = True
    budget = ARCHIVE_CONTENT_BYTES
    for member in _members(tar, out):
        shown = f"{path}!/{member.name}"
        if (by_name := scan_name(shown)) is not None:
            out.findings.append(by_name)  # a link named `.env` too: unpacked, it is one
        if not member.isfile() or not _worth_reading(member.name, member.size, budget):
            continue
        extracted = tar.extractfile(member)
        if extracted is None:
            continue
        try:
            data = extracted.read(member.size)
        except _BROKEN:
            out.complete = False
            return
        if len(data) < member.size:
            out.complete = False  # cut short by the stream cap or a truncated file: scan what came
        budget -= len(data)
        out.findings += scan_stream(io.BytesIO(data), shown)


def _members(tar: tarfile.TarFile, out: _Found) -> Iterator[tarfile.TarInfo]:
    """The members up to where the archive (or its capped stream) ends or breaks off."""
    while True:
        try:
            member = tar.next()
        except _BROKEN:
            out.complete = False
            return
        if member is None:
            return
        # tarfile keeps every member it has read (an attribute its stubs leave out); a tar of
        # 200 000 files would hold ~90 MB of them.
        if isinstance(read := getattr(tar, "members", None), list):
            read.clear()
        yield member


def _scan_compressed(stream: io.BufferedIOBase, path: str, scan_stream: ScanStream, out: _Found) -> bool:
    """Scan a gzip/bzip2/xz stream into `out`; False when not one byte of it decompresses."""
    with stream:
        capped = _Capped(stream, ARCHIVE_STREAM_BYTES)
        head = capped.peek(_TAR_MAGIC_AT + 5)
        if not head:
            return capped.broken is None  # an empty stream is a (clean) one; garbage is not
        out.opened = True
        if head[_TAR_MAGIC_AT : _TAR_MAGIC_AT + 5] == b"ustar":
            with tarfile.open(fileobj=capped, mode="r|") as tar:
                _scan_tar(tar, path, scan_stream, out)
        else:
            inner = path.rsplit(".", 1)[0]  # `data.jsonl.gz` holds `data.jsonl`: its rules apply
            inner = inner + ".tar" if path.lower().endswith((".tgz", ".tbz2", ".txz")) else inner
            shown = f"{path}!/{inner.rsplit('/', 1)[-1]}"
            out.findings += scan_stream(io.BufferedReader(capped), shown)
        if capped.broken is not None:
            out.complete = False  # what decompressed before the damage was scanned
    return True


def _worth_reading(name: str, size: int, budget: int) -> bool:
    return 0 < size <= MEMBER_MAX_BYTES and size <= budget and not name.lower().endswith(_MEDIA_SUFFIXES)


class _Capped(io.RawIOBase):
    """The first `limit` bytes of a decompressing stream, read ahead by `peek` without loss."""

    def __init__(self, inner: io.BufferedIOBase, limit: int) -> None:
        self._inner, self._left, self._ahead = inner, limit, b""
        # A truncated or damaged stream ends here, as if it were complete; the caller learns
        # it from this, after scanning what did decompress.
        self.broken: BaseException | None = None

    def readable(self) -> bool:
        return True

    def peek(self, n: int) -> bytes:
        if len(self._ahead) < n:
            self._ahead += self._take(n - len(self._ahead))
        return self._ahead[:n]

    def _take(self, n: int) -> bytes:
        if self._left <= 0 or self.broken is not None:
            return b""
        try:
            data = self._inner.read(min(n, self._left))
        except _BROKEN as exc:
            self.broken = exc
            return b""
        self._left -= len(data)
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        n = len(buffer)
        data, self._ahead = self._ahead[:n], self._ahead[n:]
        if len(data) < n:
            data += self._take(n - len(data))
        buffer[: len(data)] = data
        return len(data)
