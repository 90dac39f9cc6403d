"""Sending file bodies: single byte ranges, sendfile fast path, and the body faults.

Bodies go out with `loop.sendfile` (zero-copy): in one call without faults, in paced chunks
under a throttle, stall or cut. Only the chunk holding a flipped byte is read into memory.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import BinaryIO

import anyio
from aiohttp import web

from engine.server._faults import BodyFaults

CHUNK_BYTES = 1024 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Exception):
    """The Range header names no byte of the file."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`(start, end_inclusive)` for a single `bytes=` range, None for 'send everything'.

    An end past the last byte is clamped (hf_transfer asks for one byte too many); several
    ranges or an unknown unit are ignored, which RFC 9110 allows.
    """
    if not header:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None:
        return None
    first, last = m.groups()
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable
    return start, end


def range_headers(header: str | None, size: int) -> tuple[int, int, int, dict[str, str]]:
    """(status, offset, count, headers) for a body of `size` bytes; raises RangeNotSatisfiable."""
    rng = parse_range(header, size)
    if rng is None:
        return 200, 0, size, {"Content-Length": str(size), "Accept-Ranges": "bytes"}
    start, end = rng
    return (
        206,
        start,
        end - start + 1,
        {
            "Content-Length": str(end - start + 1),
            "Content-Range": f"bytes {start}-{end}/{size}",
            "Accept-Ranges": "bytes",
        },
    )


async def send_file(
    request: web.BaseRequest,
    *,
    path: str,
    status: int,
    offset: int,
    count: int,
    headers: Mapping[str, str],
    faults: BodyFaults,
    on_sent: Callable[[int], None],
) -> web.StreamResponse:
    """Send `count` bytes of `path` from `offset`, applying `faults`; HEAD sends headers only."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if faults.latency_s > 0:
            await anyio.sleep(faults.latency_s)
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = count
        await resp.prepare(request)
        if request.method == "HEAD" or count == 0:
            await resp.write_eof()
            return resp
        try:
            if not faults.active and request.transport is not None:
                on_sent(count)  # counted first: the client may see the last byte before we resume
                with os.fdopen(os.dup(fd), "rb") as fobj:
                    await _sendfile(request.transport, fobj, offset, count)
            else:
                await _send_with_faults(request, resp, fd, offset, count, faults, on_sent)
        except ConnectionError:
            return resp  # the client went away (or a fault cut it): nothing left to say
        if request.transport is not None and not request.transport.is_closing():
            await resp.write_eof()
        return resp
    finally:
        os.close(fd)


async def _send_with_faults(
    request: web.BaseRequest,
    resp: web.StreamResponse,
    fd: int,
    offset: int,
    count: int,
    faults: BodyFaults,
    on_sent: Callable[[int], None],
) -> None:
    chunk = CHUNK_BYTES
    if faults.per_conn_bytes_s:
        # Small chunks keep a throttled stream smooth instead of bursty.
        chunk = int(min(chunk, max(4096, faults.per_conn_bytes_s / 20)))
    if faults.aggregate is not None:
        chunk = int(min(chunk, max(4096, faults.aggregate.rate / 50)))
    sent, stalled, started = 0, False, time.monotonic()
    transport = request.transport
    with os.fdopen(os.dup(fd), "rb") as fobj:
        while sent < count:
            n = min(chunk, count - sent)
            if faults.truncate_after is not None:
                n = min(n, faults.truncate_after - sent)
                if n <= 0:
                    break
            if faults.stall_after is not None and not stalled:
                if sent >= faults.stall_after:
                    stalled = True
                    await anyio.sleep(faults.stall_s)
                    continue
                n = min(n, faults.stall_after - sent)
            if faults.aggregate is not None and (delay := faults.aggregate.reserve(n)):
                await anyio.sleep(delay)
            flip = faults.flip_offset
            if transport is None or (flip is not None and sent <= flip < sent + n):
                moved = await _send_copy(
                    resp, fd, offset + sent, n, None if flip is None else flip - sent, on_sent
                )
            else:
                # Paced chunks still go out zero-copy: the server shares the machine with the client
                # it serves in benchmarks, and a copy per byte here is CPU the client loses.
                on_sent(n)
                moved = await _sendfile(transport, fobj, offset + sent, n)
            sent += moved
            if moved < n:
                break  # the file shrank under us: cut the connection rather than lie about the length
            if (
                faults.per_conn_bytes_s
                and (ahead := started + sent / faults.per_conn_bytes_s - time.monotonic()) > 0
            ):
                await anyio.sleep(ahead)
    if sent < count and request.transport is not None:
        # Close without finishing the body: the client sees a connection cut mid-transfer.
        request.transport.close()


async def _sendfile(transport: asyncio.WriteTransport, fobj: BinaryIO, offset: int, n: int) -> int:
    if transport.is_closing():
        # asyncio raises RuntimeError for this; it is the client going away, as a reset is.
        raise ConnectionResetError("the client closed the connection")
    return await asyncio.get_running_loop().sendfile(transport, fobj, offset, n)


async def _send_copy(
    resp: web.StreamResponse, fd: int, pos: int, n: int, flip_at: int | None, on_sent: Callable[[int], None]
) -> int:
    """Send `n` bytes read into memory, the byte at `flip_at` (relative to `pos`) inverted."""
    data = await _pread(fd, n, pos)
    if flip_at is not None and 0 <= flip_at < len(data):
        data = data[:flip_at] + bytes([data[flip_at] ^ 0xFF]) + data[flip_at + 1 :]
    on_sent(len(data))
    await resp.write(data)
    return len(data)


async def _pread(fd: int, n: int, pos: int) -> bytes:
    # Reads from the page cache are fast enough inline; only big reads go to a thread.
    if n <= 256 * 1024:
        return os.pread(fd, n, pos)
    return await anyio.to_thread.run_sync(os.pread, fd, n, pos)
