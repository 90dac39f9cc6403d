"""The push's secret scan inside archives and compressed files.

A project folder tarred with its `.env`, a checkpoint zipped with `training_args.bin` (the
Trainer's pickle, with `hub_token` in it) or a `.jsonl.gz` holding a token would otherwise pass:
compressed bytes hold no readable text. Members are reported as `archive!/member`, their names
searched as file names are (a token used as a name is masked).

What is read, and why it is bounded: datasets ship as thousands of archive shards, and a full
read of each would cost more than the push's hashing.
- zip and plain tar: every member name (a zip's directory, a tar's headers, seeking past the
  data); members up to MEMBER_MAX_BYTES whole, larger ones in their first MEMBER_HEAD_BYTES,
  ARCHIVE_CONTENT_BYTES in all.
- gzip, bzip2, xz (a tar inside, or a single file): the first ARCHIVE_STREAM_BYTES of the
  decompressed stream, since reaching a later member means decompressing everything before it.
  A compressed tar's members past that point are not scanned.
- Damage does not end the scan early: a tar's bad header is skipped, as GNU tar does; a zip
  whose directory is missing (cut short) is read member by member from its local headers; a
  stream is scanned up to where it breaks. The caller then also searches the raw bytes.
- Media members (images, audio, video) are scanned by name only; archives inside archives are
  searched like any binary file, not opened; at most MAX_MEMBERS members are looked at.
- Parsing hostile bytes with the standard library raises many kinds of errors: any of them ends
  that part of the scan (never the push), and the caller searches the raw bytes then.
Zstandard, 7z and rar need libraries outside the standard one; their first bytes only are read,
as before (engine/_secretfiles.py).
"""

from __future__ import annotations

import bz2
import io
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, BinaryIO, NamedTuple, Protocol

from engine._secrets import Finding, scan_name, secrets_in_names

ARCHIVE_STREAM_BYTES = 64 << 20  # decompressed bytes read from a gzip/bzip2/xz file (~0.2 s)
ARCHIVE_CONTENT_BYTES = 16 << 20  # member bytes scanned per archive
MEMBER_MAX_BYTES = 16 << 20  # read whole up to this; a larger member is read in its head
MEMBER_HEAD_BYTES = 1 << 20  # as for a large binary file: a pickle's or header's metadata
_MEDIA_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ico", ".heic", ".avif",
    ".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".mp4", ".m4v", ".mov", ".avi", ".mkv",
    ".webm",
)  # fmt: skip
# Zips under other names: Keras models, Java and Python packages. (`.npz` is data, and torch's
# zipped `.bin`/`.pt` keep their pickle first, which the binary scan's head read covers.)
_ZIP_SUFFIXES = (".zip", ".keras", ".jar", ".war", ".whl", ".egg", ".nupkg")
_STREAM_SUFFIXES = {".gz": "gz", ".tgz": "gz", ".bz2": "bz2", ".tbz2": "bz2", ".xz": "xz", ".txz": "xz"}
_MAGIC = ((b"PK\x03\x04", "zip"), (b"\x1f\x8b", "gz"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))
# Archives here are hostile input parsed by the standard library, which raises a zoo of types on
# damage (IndexError, OverflowError, MemoryError, struct.error, ...). None may crash the push:
# whatever breaks ends that part of the scan, and the caller searches the raw bytes as well.
_BROKEN = (Exception,)
MAX_MEMBERS = 100_000  # members looked at per archive (~120 µs each); the rest: raw bytes only
_TOKEN_MIN_BYTES = 8  # no credential rule matches fewer bytes: a smaller member holds none
_TAR_MAGIC_AT = 257  # "ustar" in a POSIX tar header
_READ_BYTES = 64 << 10

# Content goes to this callback: (stream, shown path) -> findings. It is the file scanner's own
# (text, UTF-16 or binary, by the same sniffing), passed in to keep one copy of it.
ScanStream = Callable[[BinaryIO, str], list[Finding]]


def is_archive(path: str) -> bool:
    """Whether `path` names an archive (by its suffix; `archive_kind` also reads magic bytes)."""
    return archive_kind(path) is not None


def archive_kind(path: str, f: BinaryIO | None = None) -> str | None:
    """The kind of archive ("zip", "tar", "gz", "bz2", "xz") or None, by the name; a name without
    a suffix by the first bytes of `f` (read only then, and `f` is put back at its start)."""
    name = path.lower().rsplit("/", 1)[-1]
    if name.endswith(_ZIP_SUFFIXES):
        return "zip"
    if name.endswith(".tar"):
        return "tar"
    for suffix, kind in _STREAM_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    if "." in name.lstrip(".") or f is None:
        return None  # a known other format: weights, data, media
    head = f.read(_TAR_MAGIC_AT + 5)
    f.seek(0)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return "tar" if _is_tar(head) else None


def _is_tar(head: bytes) -> bool:
    return head[_TAR_MAGIC_AT : _TAR_MAGIC_AT + 5] == b"ustar"


class ArchiveScan(NamedTuple):
    findings: list[Finding]
    complete: bool  # False: part of it could not be read (truncated, corrupt, unsupported)


def scan_archive(f: BinaryIO, path: str, kind: str, scan_stream: ScanStream) -> ArchiveScan | None:
    """Findings in the archive or compressed file `f` (named `path`, of `kind`), or None when it
    does not open as one (the caller then scans it as any binary file). What could be read
    before a part broke is kept; the caller searches the raw bytes as well then."""
    out = _Found(path, scan_stream)
    try:
        if kind == "zip":
            _scan_zip(f, out)
        elif kind == "tar":
            with tarfile.open(fileobj=f, mode="r:", ignore_zeros=True) as tar:
                _scan_tar(tar, out)
        elif not _scan_compressed(_Decompressed(f, kind, ARCHIVE_STREAM_BYTES), out):
            return None
    except _BROKEN:
        if not out.opened:
            return None
        out.complete = False
    # A zip read both from its directory and from its local headers reports a member twice.
    return ArchiveScan(list(dict.fromkeys(out.masked())), out.complete)


class _Found:
    """What one archive's scan has found so far, and its content budget."""

    def __init__(self, path: str, scan_stream: ScanStream) -> None:
        self.path, self.scan_stream = path, scan_stream
        self.findings: list[Finding] = []
        self.names: list[str] = []
        self.complete = True
        self.opened = False  # it parsed as this kind of archive
        self.budget = ARCHIVE_CONTENT_BYTES

    def name(self, member: str) -> str:
        """The member as shown (`archive!/member`), its name checked (`.env`, `id_rsa`...);
        tokens used as names are searched for in `masked`, once for all members."""
        shown = f"{self.path}!/{member}"
        self.names.append(shown)
        if (by_name := scan_name(shown)) is not None:
            self.findings.append(by_name)
        return shown

    def masked(self) -> list[Finding]:
        """The findings, each path with a token in it masked, and those tokens as findings."""
        named = secrets_in_names(self.names)  # one pass over all the names: ~µs per member
        if not named:
            return self.findings
        out = [f._replace(path=named[f.path].path) if f.path in named else f for f in self.findings]
        return list(named.values()) + out

    def want(self, member: str, size: int | None) -> int:
        """How many bytes of the member to read: all of it when it fits the budget, else its
        head; 0 for media, empty members, or a head that no longer fits (small members after a
        large one still get their turn)."""
        if (size is not None and size < _TOKEN_MIN_BYTES) or member.lower().endswith(_MEDIA_SUFFIXES):
            return 0
        if size is not None and size <= min(MEMBER_MAX_BYTES, self.budget):
            return size
        head = MEMBER_HEAD_BYTES if size is None else min(size, MEMBER_HEAD_BYTES)
        return head if head <= self.budget else 0

    def content(self, shown: str, data: bytes) -> None:
        self.budget -= len(data)
        self.findings += self.scan_stream(io.BytesIO(data), shown)


def _scan_zip(f: BinaryIO, out: _Found) -> None:
    try:
        zf = zipfile.ZipFile(f)
    except _BROKEN:
        _scan_zip_entries(f, out)  # no readable directory: a zip cut short, or a broken one
        return
    with zf:
        out.opened = True
        infos = zf.infolist()
        if infos and min(i.header_offset for i in infos) > 0:
            # The directory found is not this zip's own (a zip stored last in a zip cut short):
            # read the members from their local headers as well.
            _scan_zip_entries(f, out)
        if len(infos) > MAX_MEMBERS:
            out.complete = False
        for info in infos[:MAX_MEMBERS]:
            if not info.filename or info.filename.endswith("/"):
                continue
            shown = out.name(info.filename)
            if info.flag_bits & 0x1 or not (n := out.want(info.filename, info.file_size)):
                continue  # bit 0: encrypted, unreadable without the password
            try:
                member = zf.open(info)
            except _BROKEN:
                out.complete = False  # this member only: the others are read all the same
                continue
            with member:
                # A bad CRC is raised by the read that reaches the end, losing what it read;
                # unzip extracts such a file with a warning, so its bytes are scanned all the same.
                if getattr(member, "_expected_crc", None) is not None:
                    member._expected_crc = None  # type: ignore[attr-defined]
                out.content(shown, _read_what_comes(member, n, out))


def _read_what_comes(stream: IO[bytes], n: int, out: _Found) -> bytes:
    """Up to `n` bytes of a member, in pieces: a bad CRC or a cut at the end loses nothing that
    came before it (the archive is then marked incomplete)."""
    pieces: list[bytes] = []
    left = n
    while left > 0:
        try:
            piece = stream.read(min(left, _READ_BYTES))
        except _BROKEN:
            out.complete = False
            break
        if not piece:
            break
        pieces.append(piece)
        left -= len(piece)
    return b"".join(pieces)


_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # a zip member's local header (30 bytes)


def _scan_zip_entries(f: BinaryIO, out: _Found) -> None:
    """A zip without a usable central directory, read from the local header before each member."""
    f.seek(0)
    raw = f.read(ARCHIVE_STREAM_BYTES)
    data = memoryview(raw)  # slices without copies: one copy of the rest per member was quadratic
    pos = raw.find(b"PK\x03\x04")
    if pos < 0:
        raise zipfile.BadZipFile("no zip member header")
    out.opened, out.complete = True, False
    count = 0
    while 0 <= pos and pos + _LOCAL_HEADER.size <= len(data) and count < MAX_MEMBERS:
        count += 1
        _, _, flags, method, _, _, _, csize, usize, nlen, xlen = _LOCAL_HEADER.unpack_from(data, pos)
        start = pos + _LOCAL_HEADER.size + nlen + xlen
        name = bytes(data[pos + _LOCAL_HEADER.size : start - xlen]).decode("utf-8", "replace")
        shown = out.name(name) if name else name
        # Sizes of 0 with flag bit 3: they follow the data instead (a streamed zip).
        end = min(start + csize, len(data)) if csize else len(data)
        n = out.want(name, usize or None) if name and not flags & 0x1 else 0
        used = csize
        if n and method == 0:
            out.content(shown, bytes(data[start : min(end, start + n)]))
        elif n and method == 8:
            body, used_now = _inflate(data, start, end, n)
            out.content(shown, body)
            used = used or used_now
        pos = raw.find(b"PK\x03\x04", start + max(used, 0))


def _inflate(data: memoryview, start: int, end: int, n: int) -> tuple[bytes, int]:
    """Up to `n` bytes of the raw deflate stream at `data[start:end]`, fed in pieces (a copy of
    the whole rest per member made this quadratic), and how many input bytes it used."""
    inflate = zlib.decompressobj(-15)
    pieces: list[bytes] = []
    got, pos = 0, start
    try:
        while got < n and not inflate.eof and pos < end:
            chunk = data[pos : min(pos + _READ_BYTES, end)]
            pos += len(chunk)
            piece = inflate.decompress(chunk, n - got)
            pieces.append(piece)
            got += len(piece)
            if inflate.unconsumed_tail:
                break  # `n` reached within this chunk
    except zlib.error:
        pass
    return b"".join(pieces), pos - start - len(inflate.unconsumed_tail) - len(inflate.unused_data)


def _scan_tar(tar: tarfile.TarFile, out: _Found, stream_bytes: int | None = None) -> None:
    """`stream_bytes`: the tar is read from a stream capped there; a member reaching past it ends
    the scan (skipping it would read a declared size of any length, 10**30 bytes included)."""
    out.opened = True
    for member in _members(tar, out):
        shown = out.name(member.name)  # a link named `.env` too: unpacked, it is one
        past_cap = stream_bytes is not None and member.offset_data + member.size > stream_bytes
        n = out.want(member.name, member.size) if member.isfile() else 0
        extracted = tar.extractfile(member) if n else None
        if extracted is not None:
            data = _read_what_comes(extracted, n, out)
            if len(data) < n:
                out.complete = False  # cut short by the stream cap or a truncated file
            out.content(shown, data)
        if past_cap:
            out.complete = False
            return


def _members(tar: tarfile.TarFile, out: _Found) -> Iterator[tarfile.TarInfo]:
    """The members up to where the archive (or its capped stream) ends or breaks off; a bad
    header in between is skipped (`ignore_zeros`), as GNU tar does."""
    last = -1
    for count in range(MAX_MEMBERS + 1):
        try:
            member = tar.next()
        except _BROKEN:
            out.complete = False
            return
        if member is None:
            return
        if count == MAX_MEMBERS or member.offset <= last or member.size < 0:
            # A negative size walks tarfile back to a header it has read: it would loop.
            out.complete = False
            return
        last = member.offset
        # tarfile keeps every member it has read (an attribute its stubs leave out); a tar of
        # 200 000 files would hold ~90 MB of them.
        if isinstance(read := getattr(tar, "members", None), list):
            read.clear()
        yield member


def _scan_compressed(stream: _Decompressed, out: _Found) -> bool:
    """Scan a gzip/bzip2/xz stream into `out`; False when not one byte of it decompresses."""
    head = stream.peek(_TAR_MAGIC_AT + 5)
    if not head:
        return not stream.broken  # an empty stream is a (clean) one; garbage is not
    out.opened = True
    if _is_tar(head):
        with tarfile.open(fileobj=stream, mode="r|", ignore_zeros=True) as tar:
            _scan_tar(tar, out, stream_bytes=ARCHIVE_STREAM_BYTES)
    else:
        path = out.path
        inner = path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path
        inner = inner + ".tar" if path.lower().endswith((".tgz", ".tbz2", ".txz")) else inner
        shown = f"{path}!/{inner.rsplit('/', 1)[-1]}"  # `data.jsonl.gz` holds `data.jsonl`
        out.findings += out.scan_stream(io.BufferedReader(stream), shown)
    if stream.broken:
        out.complete = False  # what decompressed before the damage was scanned
    return True


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


def _decompressor(kind: str) -> _Decompressor:
    if kind == "gz":
        return _Inflate()
    return bz2.BZ2Decompressor() if kind == "bz2" else lzma.LZMADecompressor()


class _Inflate:
    """zlib's gzip decompressor with the `decompress(data, max_length)` of the bz2/lzma ones."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(31)  # 31: a gzip header and trailer

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    @property
    def needs_input(self) -> bool:
        return not self._d.unconsumed_tail

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        return self._d.decompress(self._d.unconsumed_tail + data, max(max_length, 0))


class _Decompressed(io.RawIOBase):
    """The first `limit` decompressed bytes of a gzip/bzip2/xz file, across concatenated members.

    Damage (a corrupt block, a truncated end, garbage after the last member) ends the stream
    there, with everything before it delivered, and sets `broken`.
    """

    def __init__(self, f: BinaryIO, kind: str, limit: int) -> None:
        self._f, self._kind, self._left = f, kind, limit
        self._d: _Decompressor | None = _decompressor(kind)
        self._pending = b""  # compressed input not yet fed
        self._ahead = b""  # decompressed, not yet read
        self.broken = False

    def readable(self) -> bool:
        return True

    def peek(self, n: int) -> bytes:
        while len(self._ahead) < n and (more := self._produce(n - len(self._ahead))):
            self._ahead += more
        return self._ahead[:n]

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        n = len(buffer)
        if not self._ahead:
            self._ahead = self._produce(n)
        data, self._ahead = self._ahead[:n], self._ahead[n:]
        buffer[: len(data)] = data
        return len(data)

    def _produce(self, n: int) -> bytes:
        """Up to `n` more decompressed bytes; b"" at the end (or the cap, or the damage)."""
        while self._left > 0 and self._d is not None:
            if self._d.eof:
                rest = self._d.unused_data + self._pending or self._f.read(_READ_BYTES)
                if self._kind == "xz":
                    # Stream padding (NULs, legal between .xz streams) is not another stream.
                    while rest and not rest.lstrip(b"\0"):
                        rest = self._f.read(_READ_BYTES)
                    rest = rest.lstrip(b"\0")
                if not rest:
                    self._d = None  # a clean end
                    break
                self._pending = rest
                self._d = _decompressor(self._kind)  # another member follows, or garbage
            # Input only when the decompressor has used up what it holds: fed more, it would
            # hold ever more (output is capped per call, input is not).
            data = b""
            if self._d.needs_input:
                data, self._pending = self._pending or self._f.read(_READ_BYTES), b""
            try:
                out = self._d.decompress(data, min(n, self._left))
            except _BROKEN:
                self.broken, self._d = True, None
                break
            if not out and not data and not self._d.eof:
                self.broken, self._d = True, None  # truncated
                break
            if out:
                self._left -= len(out)
                return out
        return b""
