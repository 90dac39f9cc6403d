"""Fetch one file into its temp path: ranged in parallel, resumable, hashed while it lands.

A large file is cut into byte ranges fetched over several connections and written in place
(pwrite into a preallocated temp file, no reassembly). Progress is saved beside the temp file,
so a killed run resumes from the ranges already on disk. The digest is computed over the
contiguous prefix as ranges complete (read back from the page cache on a worker thread), so
verification finishes moments after the last byte arrives instead of adding a second pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import aiofiles
import anyio

from engine._cache import atomic_write
from engine._config import EngineConfig, HostLimits
from engine._errors import (
    ForbiddenError,
    HubError,
    IntegrityError,
    ProtocolError,
    TransferTimeoutError,
    TransportError,
    first_error,
)
from engine._events import BytesMoved, EventSink
from engine._hub import MAX_REDIRECTS, REDIRECTS, Ctx, HubClient, redirect_target, strip_query
from engine._models import RemoteFile
from engine._plan import ByteRange, Intervals, Progress, plan_missing
from engine._ratelimit import TokenBucket, acquire

READ_BYTES = 256 << 10  # chunk size of whole-file GETs
HASH_BLOCK = 2 << 20
WRITER_THREADS = 4
SMALL_IN_MEMORY = 1 << 20
HASH_MIN_STEP = 8 << 20  # hash in steps of at least this much, to keep thread hops few
SAVE_EVERY_S = 0.5


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


def new_hasher(file: RemoteFile) -> Hasher:
    """sha256 of the content for LFS files; git-blob sha1 (`blob <size>\\0` + content) otherwise."""
    if file.is_lfs:
        return hashlib.sha256()
    h = hashlib.sha1(usedforsecurity=False)
    h.update(b"blob %d\x00" % file.size)
    return h


@dataclass(frozen=True, slots=True)
class FileJob:
    file: RemoteFile
    resolve_url: str
    temp: Path
    ctx: Ctx

    @property
    def progress_path(self) -> Path:
        return progress_path(self.temp)


def progress_path(temp: Path) -> Path:
    """Where the ranges already on disk of the partial file `temp` are recorded."""
    return temp.with_name(temp.name + ".progress")


def drop_partial(temp: Path) -> None:
    """Remove a partial download and its progress record (the caller holds the file's lock)."""
    for p in (temp, progress_path(temp)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@dataclass
class _State:
    """Shared between the range tasks of one file and its hashing loop."""

    fd: int
    done: Intervals
    changed: anyio.Event = field(default_factory=anyio.Event)
    # The hashing loop sleeps until the contiguous prefix reaches this: blocks landing beyond it
    # (most of them, with parallel ranges) cost no wake-up.
    wake_at: int = 0
    location: str = ""

    def record(self, start: int, end: int) -> None:
        self.done.add(start, end)
        if self.done.prefix() >= self.wake_at:
            self.changed.set()


class Downloader:
    """Downloads files for one run; shares the connection limiter and the byte-rate bucket."""

    def __init__(self, client: HubClient, config: EngineConfig, *, on_event: EventSink) -> None:
        self.client, self.config = client, config
        self.connections = anyio.CapacityLimiter(config.max_connections)
        self.hash_limiter = anyio.CapacityLimiter(config.hash_workers)
        self.rate = _rate_bucket(config.max_rate_bytes_s)
        self.on_event = on_event
        self.bytes_fetched = 0
        # Few writer threads: each extra thread costs a malloc arena, and page-cache writes are fast.
        self.writers = anyio.CapacityLimiter(WRITER_THREADS)

    async def fetch(self, job: FileJob) -> None:
        """Leave a complete, verified copy of `job.file` at `job.temp`, or raise.

        A digest mismatch discards what is on disk and fetches the file once more; a second
        mismatch raises IntegrityError and leaves nothing behind.
        """
        for attempt in (1, 2):
            try:
                await self._fetch_once(job)
                return
            except IntegrityError:
                self.discard(job)
                if attempt == 2:
                    raise

    def discard(self, job: FileJob) -> None:
        drop_partial(job.temp)

    async def _fetch_once(self, job: FileJob) -> None:
        f = job.file
        job.temp.parent.mkdir(parents=True, exist_ok=True)
        if f.size <= self.config.chunk_bytes:
            await self._fetch_whole(job)
        else:
            await self._fetch_ranged(job)
        size = job.temp.stat().st_size
        if size != f.size:
            raise IntegrityError(
                f"size mismatch for {f.path}: expected {f.size}, got {size}",
                path=f.path,
                expected=str(f.size),
                actual=str(size),
            )

    # -- small files: one GET, hashed inline ---------------------------------------------

    async def _fetch_whole(self, job: FileJob) -> None:
        f = job.file
        attempts = 0
        while True:
            hasher = new_hasher(f)
            try:
                if f.size <= SMALL_IN_MEMORY:
                    # Small files dominate big repos by count: one thread hop to write each, not three.
                    chunks = [c async for c in self._body(job, hasher)]
                    await anyio.to_thread.run_sync(_write_file, job.temp, chunks, limiter=self.writers)
                else:
                    async with aiofiles.open(job.temp, "wb") as out:
                        async for chunk in self._body(job, hasher):
                            await out.write(chunk)
                break
            except (TransportError, HubError) as exc:
                # An expired signed URL: every attempt resolves again and gets a fresh one.
                if isinstance(exc, HubError) and not self._expired(exc, exc.url):
                    raise
                attempts += 1
                if attempts > self.config.retry.max_retries:
                    raise
                await self._retry_wait(job.resolve_url, attempts, exc)
        self._verify(f, hasher.hexdigest())

    async def _body(self, job: FileJob, hasher: Hasher) -> AsyncIterator[bytes]:
        if not job.file.size:
            return
        async with self.connections, self.client.stream(job.resolve_url, ctx=job.ctx) as stream:
            async for chunk in stream.iter_chunks(READ_BYTES):
                await self._throttle(len(chunk))
                hasher.update(chunk)
                self.bytes_fetched += len(chunk)
                self.on_event(BytesMoved(job.file.path, len(chunk)))
                yield chunk

    # -- large files: parallel ranges, resumable --------------------------------------------

    async def _fetch_ranged(self, job: FileJob) -> None:
        f = job.file
        progress = Progress(f.etag, f.size, ())
        if job.temp.exists():
            with contextlib.suppress(OSError):
                progress = Progress.from_json(job.progress_path.read_bytes(), etag=f.etag, size=f.size)
        fd = os.open(job.temp, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size != f.size:
                os.ftruncate(fd, f.size)
            state = _State(fd, Intervals(progress.done))
            missing = plan_missing(f.size, progress.done, self.config.chunk_bytes)
            hasher = new_hasher(f)
            if missing:
                state.location = await self._locate(job)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._hash_loop, state, f.size, hasher)
                    async with anyio.create_task_group() as saver:
                        saver.start_soon(self._keep_saving, job, state)
                        async with anyio.create_task_group() as ranges:
                            for r in missing:
                                ranges.start_soon(self._fetch_range, job, state, r)
                        saver.cancel_scope.cancel()  # once complete, the caller removes the progress file
            except BaseExceptionGroup as group:
                raise first_error(group) from None
        finally:
            os.close(fd)
        self._verify(f, hasher.hexdigest())

    async def _locate(self, job: FileJob) -> str:
        """The URL that serves the bytes: follow same-origin redirects, stop at another host (the CDN)."""
        url = job.resolve_url
        for _ in range(MAX_REDIRECTS):
            # The official client's "etag" request: HF_HUB_ETAG_TIMEOUT bounds it there and here.
            resp = await self.client.send(
                "HEAD", url, ctx=job.ctx, follow=False, timeout_s=self.client.config.metadata_timeout_s
            )
            location = resp.headers.get("location")
            if resp.status not in REDIRECTS or not location:
                return url
            url = redirect_target(url, location)
            if not self.client.is_hub(url):
                return url
        raise ProtocolError(f"too many redirects resolving {job.file.path}")

    async def _fetch_range(self, job: FileJob, state: _State, r: ByteRange) -> None:
        pos, attempts = r.start, 0

        def land(view: memoryview) -> None:
            # Runs inside the connection's receive callback: the block is written before the
            # next one is received into the same buffer, so each byte is copied once, from the
            # socket buffer into the page cache, with no task switch per block.
            nonlocal pos, attempts
            end = pos + len(view)
            if end > r.end:
                raise ProtocolError(f"server sent more bytes than asked for {job.file.path}")
            _pwrite_all(state.fd, view, pos)
            self.bytes_fetched += len(view)
            self.on_event(BytesMoved(job.file.path, len(view)))
            state.record(pos, end)
            pos = end
            attempts = 0  # progress resets the retry budget, as the official client does

        while pos < r.end:
            try:
                async with self.connections:
                    async with self.client.stream(
                        state.location, ctx=job.ctx, byte_range=(pos, r.end - 1)
                    ) as stream:
                        if stream.status != 206 and not (
                            stream.status == 200 and pos == 0 and r.end == job.file.size
                        ):
                            raise ProtocolError(f"server ignored the Range request for {job.file.path}")
                        await stream.pour(land, pace=self.rate.reserve if self.rate else None)
                if pos < r.end:
                    raise TransportError(f"short read for {job.file.path}", url=strip_query(state.location))
            except TransportError as exc:
                attempts += 1
                if attempts > self.config.retry.max_retries:
                    raise
                await self._retry_wait(state.location, attempts, exc)
            except HubError as exc:
                # A signed CDN URL that expired mid-file: resolve again and continue where we are.
                if self._expired(exc, state.location):
                    attempts += 1
                    if attempts > self.config.retry.max_retries:
                        # Not the token's fault (none goes to that host): say what kept failing.
                        host = urlsplit(state.location).hostname or "the download host"
                        raise ForbiddenError(
                            f"{host} refused {job.file.path} (HTTP {exc.status}) {attempts} times,"
                            " each time with a fresh signed URL from the Hub",
                            status=exc.status,
                            url=strip_query(state.location),
                        ) from exc
                    if attempts > 1:
                        # Once is an expired link; again and again is a host in trouble: back off.
                        await self._retry_wait(state.location, attempts - 1, exc)
                    state.location = await self._locate(job)
                    continue
                raise

    async def _keep_saving(self, job: FileJob, state: _State) -> None:
        # On a timer, not in the receive callback: a kill -9 loses at most SAVE_EVERY_S of progress.
        progress = job.progress_path
        while True:
            await anyio.sleep(SAVE_EVERY_S)
            atomic_write(progress, Progress(job.file.etag, job.file.size, state.done.ranges()).to_json())

    async def _hash_loop(self, state: _State, size: int, hasher: Hasher) -> None:
        hashed = 0
        while hashed < size:
            prefix = state.done.prefix()
            if prefix - hashed >= HASH_MIN_STEP or (prefix == size and prefix > hashed):
                await anyio.to_thread.run_sync(
                    _hash_region, state.fd, hashed, prefix, hasher, limiter=self.hash_limiter
                )
                hashed = prefix
            else:
                state.wake_at = min(size, hashed + HASH_MIN_STEP)
                state.changed = anyio.Event()
                await state.changed.wait()

    # -- shared helpers -----------------------------------------------------------------------

    async def _throttle(self, n: int) -> None:
        if self.rate is not None:
            await acquire(self.rate, n)

    def _expired(self, exc: HubError, url: str) -> bool:
        """A refusal from the storage host a resolve sent us to: a signed URL that expired, which
        a fresh resolve replaces (the Hub's own 403 is about the token, and final)."""
        return exc.status in (403, 410) and not self.client.is_hub(url)

    async def _retry_wait(self, url: str, attempt: int, exc: BaseException) -> None:
        if isinstance(exc, HubError) and exc.status:
            reason = str(exc.status)
        else:
            reason = "timeout" if isinstance(exc, TransferTimeoutError) else "connection"
        await self.client.wait_retry(url, attempt, reason, None)

    def _verify(self, f: RemoteFile, actual: str) -> None:
        expected = f.etag  # the LFS sha256, else the git blob id
        if expected and actual != expected:
            algo = "sha256" if f.is_lfs else "git sha1"
            raise IntegrityError(
                f"{algo} mismatch for {f.path}: expected {expected}, got {actual}",
                path=f.path,
                expected=expected,
                actual=actual,
            )


def _write_file(path: Path, chunks: list[bytes]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _rate_bucket(max_rate: float | None, clock: Callable[[], float] = time.monotonic) -> TokenBucket | None:
    if not max_rate:
        return None
    # The cap holds over any second, the first included: the bucket lends at most 1/20 s of
    # bytes up front. Blocks larger than that are still let through, as debt that the next
    # reader waits out, so no connection starves.
    return TokenBucket(HostLimits(rate_per_s=max_rate, burst=max(64 << 10, int(max_rate / 20))), clock)


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        offset += n
        view = view[n:]


def _hash_region(fd: int, start: int, end: int, hasher: Hasher) -> None:
    """Hash bytes [start, end) straight from the page cache, one small mmap window at a time.

    Mapping instead of pread saves a copy per byte; small windows keep the mapped (resident)
    pages, which count toward the process RSS, to HASH_BLOCK per hashing thread.
    """
    page = mmap.ALLOCATIONGRANULARITY
    pos = start
    while pos < end:
        base = pos - pos % page
        stop = min(end, base + HASH_BLOCK)
        with mmap.mmap(fd, stop - base, prot=mmap.PROT_READ, offset=base) as mapped:
            with memoryview(mapped) as view:
                hasher.update(view[pos - base : stop - base])
        pos = stop
