"""Pure range arithmetic for chunked downloads, and the persisted progress of a partial file."""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class ByteRange:
    """Bytes [start, end) of a file (end exclusive; HTTP's `Range` header wants end - 1)."""

    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    def header(self) -> tuple[int, int]:
        return self.start, self.end - 1


def split_ranges(size: int, chunk_bytes: int) -> list[ByteRange]:
    """Cut [0, size) into consecutive ranges of `chunk_bytes` (the last one may be shorter)."""
    if chunk_bytes <= 0:
        raise ValueError("chunk_bytes must be positive")
    return [ByteRange(s, min(s + chunk_bytes, size)) for s in range(0, size, chunk_bytes)]


def merge(ranges: Iterable[ByteRange]) -> list[ByteRange]:
    """Sort and coalesce overlapping or touching ranges."""
    out: list[ByteRange] = []
    for r in sorted(r for r in ranges if r.size > 0):
        if out and r.start <= out[-1].end:
            out[-1] = ByteRange(out[-1].start, max(out[-1].end, r.end))
        else:
            out.append(r)
    return out


def subtract(wanted: Sequence[ByteRange], done: Sequence[ByteRange]) -> list[ByteRange]:
    """The parts of `wanted` not covered by `done` (both may be unsorted)."""
    done = merge(done)
    out: list[ByteRange] = []
    for w in sorted(wanted):
        cursor = w.start
        for d in done:
            if d.end <= cursor or d.start >= w.end:
                continue
            if d.start > cursor:
                out.append(ByteRange(cursor, d.start))
            cursor = max(cursor, d.end)
        if cursor < w.end:
            out.append(ByteRange(cursor, w.end))
    return out


def contiguous_prefix(done: Sequence[ByteRange]) -> int:
    """Length of the prefix [0, n) fully covered by `done`."""
    merged = merge(done)
    return merged[0].end if merged and merged[0].start == 0 else 0


class Intervals:
    """A growing set of disjoint byte ranges, coalesced as they are added.

    A ranged download records every block it writes; re-merging the whole list each time cost
    more CPU than the writes. Here a block that extends a range costs a bisect and a list edit.
    """

    def __init__(self, ranges: Iterable[ByteRange] = ()) -> None:
        merged = merge(ranges)
        self._starts = [r.start for r in merged]
        self._ends = [r.end for r in merged]

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        i = bisect_right(self._starts, start)
        if i and self._ends[i - 1] >= start:  # touches or overlaps its predecessor
            i -= 1
            start, end = self._starts[i], max(end, self._ends[i])
            del self._starts[i], self._ends[i]
        while i < len(self._starts) and self._starts[i] <= end:  # swallows its successors
            end = max(end, self._ends[i])
            del self._starts[i], self._ends[i]
        self._starts.insert(i, start)
        self._ends.insert(i, end)

    def prefix(self) -> int:
        """Length of the prefix [0, n) fully covered."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0

    def ranges(self) -> tuple[ByteRange, ...]:
        return tuple(ByteRange(a, b) for a, b in zip(self._starts, self._ends, strict=True))


def plan_missing(size: int, done: Sequence[ByteRange], chunk_bytes: int) -> list[ByteRange]:
    """Ranges still to fetch for a file of `size`, each at most `chunk_bytes`."""
    out: list[ByteRange] = []
    for gap in subtract([ByteRange(0, size)], done):
        out.extend(
            ByteRange(gap.start + r.start, gap.start + r.end) for r in split_ranges(gap.size, chunk_bytes)
        )
    return out


@dataclass(frozen=True, slots=True)
class Progress:
    """What is already on disk for one incomplete file; persisted beside it as JSON."""

    etag: str
    size: int
    done: tuple[ByteRange, ...]

    def to_json(self) -> bytes:
        return json.dumps(
            {"etag": self.etag, "size": self.size, "done": [[r.start, r.end] for r in merge(self.done)]}
        ).encode()

    @classmethod
    def from_json(cls, data: bytes, *, etag: str, size: int) -> Progress:
        """Parse saved progress; anything unreadable or for another file counts as nothing done."""
        try:
            doc = json.loads(data)
            if doc.get("etag") != etag or int(doc.get("size", -1)) != size:
                return cls(etag, size, ())
            done = tuple(
                ByteRange(int(a), int(b)) for a, b in doc.get("done", []) if 0 <= int(a) < int(b) <= size
            )
        except (ValueError, TypeError, AttributeError):
            return cls(etag, size, ())
        return cls(etag, size, tuple(merge(done)))
