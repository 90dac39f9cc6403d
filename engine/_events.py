"""Progress events the engine emits; the CLI renders them. Plain data, past-tense names."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple


class RetryScheduled(NamedTuple):
    url: str  # without query string: signed URLs carry credentials
    attempt: int
    delay_s: float
    reason: str  # "429", "503", "connect", "timeout", ...


class HostPaused(NamedTuple):
    """The whole host is paused: a Retry-After or an exhausted RateLimit window."""

    host: str
    delay_s: float
    reason: str


class PlanReady(NamedTuple):
    files: int
    total_bytes: int
    skipped: int
    blocked: int


class FileStarted(NamedTuple):
    path: str
    total_bytes: int


class BytesMoved(NamedTuple):
    path: str
    n: int


class FileFinished(NamedTuple):
    path: str
    skipped: bool = False


class FileFailed(NamedTuple):
    path: str
    reason: str


class FileHashed(NamedTuple):
    path: str
    n: int  # bytes hashed (0 when the hash cache answered)


class Notice(NamedTuple):
    """Something the user should read: a blocked file, a fallback taken."""

    message: str


Event = (
    RetryScheduled
    | HostPaused
    | PlanReady
    | FileStarted
    | BytesMoved
    | FileFinished
    | FileFailed
    | FileHashed
    | Notice
)
EventSink = Callable[[Event], None]


def discard(event: Event) -> None:
    """The default sink: ignore every event."""
