"""Progress events the engine emits; the CLI renders them. Plain data, past-tense names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    url: str  # without query string: signed URLs carry credentials
    attempt: int
    delay_s: float
    reason: str  # "429", "503", "connect", "timeout", ...


@dataclass(frozen=True, slots=True)
class HostPaused:
    """The whole host is paused: a Retry-After or an exhausted RateLimit window."""

    host: str
    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class PlanReady:
    files: int
    total_bytes: int
    skipped: int
    blocked: int


@dataclass(frozen=True, slots=True)
class FileStarted:
    path: str
    total_bytes: int


@dataclass(frozen=True, slots=True)
class BytesMoved:
    path: str
    n: int


@dataclass(frozen=True, slots=True)
class FileFinished:
    path: str
    skipped: bool = False


@dataclass(frozen=True, slots=True)
class FileFailed:
    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class FileHashed:
    path: str
    n: int  # bytes hashed (0 when the hash cache answered)


@dataclass(frozen=True, slots=True)
class Notice:
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
