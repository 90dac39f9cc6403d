"""Reading files and folders for the push's secret scan: text whole, binary where secrets live.

The rules and the text scanner are in engine/_secrets.py (pure, no file access); this module
decides what of each file to read and hands the text over. A file is binary when its first
BINARY_SNIFF_BYTES hold a NUL or, under a weights or archive name, are not UTF-8; binary files are
searched for token shapes only, in the regions `_binary_regions` picks.
"""

from __future__ import annotations

import codecs
import functools
import io
import itertools
import os
from collections.abc import Container, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from engine import _secrets as rules
from engine._secretarchives import archive_kind, scan_archive
from engine._secrets import BINARY_SNIFF_BYTES, SCAN_BLOCK_BYTES, Finding, scan_name

# Weights and archives nearly always hold a NUL in their first bytes, but not every format must
# (an ONNX graph is protobuf); under these names, bytes that are not UTF-8 mean binary as well.
# A text file under such a name (a Git LFS pointer, a renamed dump) is still scanned.
_BINARY_SUFFIXES = (
    ".safetensors", ".gguf", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".onnx", ".h5",
    ".msgpack", ".npy", ".npz", ".parquet", ".arrow", ".zip", ".gz", ".tar", ".zst",
)  # fmt: skip


def _is_binary(path: str, head: bytes) -> bool:
    """Whether a file is binary, judged by its first bytes (`head`) and its name."""
    if b"\0" in head:
        return True
    if not path.lower().endswith(_BINARY_SUFFIXES):
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at the end is fine
    except UnicodeDecodeError:
        return True
    return False


def _is_utf16(path: str, head: bytes) -> bool:
    # UTF-16 text (what Windows PowerShell's `>` writes) is full of NULs: its BOM says it is
    # text, and it is scanned as the UTF-8 it decodes to.
    return head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not path.lower().endswith(
        _BINARY_SUFFIXES
    )


def _sniff(f: BinaryIO, path: str) -> tuple[bytes, str]:
    """The first BINARY_SNIFF_BYTES of `f`, and what they make it: "binary", "utf16" or "text"."""
    head = f.read(BINARY_SNIFF_BYTES)
    if _is_utf16(path, head):
        return head, "utf16"
    return head, "binary" if _is_binary(path, head) else "text"


def is_binary_file(file: Path, path: str) -> bool:
    """Whether the content scan searches `file` as binary (token shapes, in chosen regions)."""
    with file.open("rb") as f:
        return _sniff(f, path)[1] == "binary"


def _scan_file(file: Path, path: str, *, binary: bool = False) -> list[Finding]:
    with file.open("rb") as f:
        kind = archive_kind(path, f)
        if kind is not None and (scan := scan_archive(f, path, kind, scan_stream)) is not None:
            if scan.complete:
                return scan.findings
            f.seek(0)  # a part did not open: its raw bytes are searched as well
            return scan.findings + _scan_binary(f, path)
        f.seek(0)
        return _scan_binary(f, path) if binary else scan_stream(f, path)


def scan_stream(f: BinaryIO, path: str) -> list[Finding]:
    """Content findings in `f` from where it is, sniffed and read as a file named `path`.

    Text is read in SCAN_BLOCK_BYTES blocks; a binary `f` that cannot seek (a decompressing
    stream) is searched in its first BINARY_FULL_SCAN_BYTES.
    """
    head, kind = _sniff(f, path)
    if kind == "binary":
        if f.seekable():
            return _scan_binary(f, path)
        return _scan_binary(io.BytesIO(head + f.read(BINARY_FULL_SCAN_BYTES - len(head))), path)
    first = head + f.read(SCAN_BLOCK_BYTES - len(head))
    blocks = itertools.chain([first], iter(functools.partial(f.read, SCAN_BLOCK_BYTES), b""))
    return rules._scan_stream(path, _utf16_as_utf8(blocks) if kind == "utf16" else blocks)


# Binary files hold secrets too: `training_args.bin` (a pickle the Trainer saves) keeps
# `hub_token`, and a safetensors header takes any metadata. Their token-shaped strings are ASCII
# bytes among the others, found by the same rules over a latin-1 reading (one char per byte).
# Weights are not read whole, which would cost a regex pass per rule over gigabytes: a pickle or
# unknown binary up to BINARY_FULL_SCAN_BYTES is; a larger one is read where formats keep their
# metadata, its first BINARY_HEAD_BYTES (all of a safetensors header) and last BINARY_TAIL_BYTES.
# Media files are searched in their first BINARY_SNIFF_BYTES only (the bytes read to tell them
# binary): their payload holds no readable text, an image dataset is thousands of them, and a
# full read costs ~6 ms per MiB, several times the push's hashing. So are compressed files that
# engine/_secretarchives.py cannot open (zstd, 7z, rar, or a broken zip/tar/gzip/bzip2/xz).
BINARY_FULL_SCAN_BYTES = 16 << 20
BINARY_HEAD_BYTES = 1 << 20
BINARY_TAIL_BYTES = 64 << 10
_SAFETENSORS_HEADER_MAX = 100 << 20  # what the format's readers accept
_SKIMMED_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ico", ".heic", ".avif",
    ".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".mp4", ".m4v", ".mov", ".avi", ".mkv",
    ".webm", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".rar",
)  # fmt: skip


# Tensor and table formats keep their metadata (a safetensors or GGUF header, an Arrow schema,
# a Parquet footer) at either end; between lies the data itself, numbers mostly, read whole only
# at ~6 ms per MiB: a dataset of 1 MiB shards would pay seconds per thousand files.
_DATA_SUFFIXES = (
    ".safetensors", ".gguf", ".onnx", ".h5", ".hdf5", ".msgpack", ".npy", ".npz", ".parquet",
    ".arrow", ".feather", ".tfrecord", ".tflite", ".mlmodel",
)  # fmt: skip


def _binary_regions(f: BinaryIO, path: str) -> list[tuple[int, int]]:
    size = f.seek(0, os.SEEK_END)
    name = path.lower()
    if name.endswith(_SKIMMED_SUFFIXES):
        return [(0, min(size, BINARY_SNIFF_BYTES))]
    data = name.endswith(_DATA_SUFFIXES)
    if size <= (2 * BINARY_TAIL_BYTES if data else BINARY_FULL_SCAN_BYTES):
        return [(0, size)]
    head = BINARY_TAIL_BYTES if data else BINARY_HEAD_BYTES
    if name.endswith(".safetensors"):
        f.seek(0)
        start = f.read(9)
        n = int.from_bytes(start[:8], "little")
        if start[8:] == b"{" and n <= min(size - 8, _SAFETENSORS_HEADER_MAX):  # a real header
            head = max(head, 8 + n)
    head = min(head, size)
    return [(0, head), (max(head, size - BINARY_TAIL_BYTES), size)]


def _scan_binary(f: BinaryIO, path: str) -> list[Finding]:
    """Token-shaped secrets in the regions of a binary file that `_binary_regions` picks."""
    findings: list[Finding] = []
    seen: set[int] = set()
    for start, end in _binary_regions(f, path):
        pos = start
        while pos < end:
            # Windows overlap, so a token across a window edge is seen whole by the next one.
            lo = max(start, pos - rules._OVERLAP_CHARS)
            f.seek(lo)
            data = f.read(min(SCAN_BLOCK_BYTES, end - pos) + (pos - lo))
            if len(data) <= pos - lo:
                break  # the file shrank
            for hit in rules._hits(data.decode("latin-1"), None):
                if (at := lo + hit.start) not in seen:
                    seen.add(at)
                    findings.append(
                        Finding(path, None, f"{hit.kind} in binary data at byte {at}", hit.excerpt)
                    )
            pos = lo + len(data)
    return findings


def _utf16_as_utf8(blocks: Iterable[bytes]) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder("utf-16")(errors="replace")  # reads the BOM
    for block in blocks:
        yield decoder.decode(block).encode("utf-8")
    yield decoder.decode(b"", True).encode("utf-8")


def scan_folder(root: Path, paths: Iterable[str], *, binary: Container[str] = ()) -> list[Finding]:
    """Scan the files at `paths` (relative POSIX paths under `root`) by name and by content.

    Every text file is read whole, in blocks of SCAN_BLOCK_BYTES. A file is binary when its
    first BINARY_SNIFF_BYTES hold a NUL byte or, under a weights or archive name
    (`.safetensors`, `.bin`, `.gguf`, `.zip`…), are not UTF-8; it is searched for token-shaped
    secrets, whole up to BINARY_FULL_SCAN_BYTES, else where formats keep metadata. `binary`:
    paths the caller already found binary (`is_binary_file`), not sniffed again. OSError propagates.
    """
    findings: list[Finding] = []
    paths = list(paths)
    named = rules.secrets_in_names(paths)
    for rel in paths:
        # Every finding names its file: with a secret in the name, the masked name.
        shown = named[rel].path if rel in named else rel
        if (by_name := scan_name(shown)) is not None:
            findings.append(by_name)
        if rel in named:
            findings.append(named[rel])
        findings += _scan_file(root / rel, shown, binary=rel in binary)
    return findings
