"""One HTTP/1.1 response: its framing (Content-Length, chunked, until close) and its body, read
in place from the connection buffer or poured into a sink from the receive callback.

The connection goes back to its owner (engine/_http.py's Pool) when the body was read to the
end and the framing allows reuse; otherwise it is closed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from engine._conn import BUFFER_BYTES, MAX_HEAD_BYTES, BadResponse, Conn, ConnectionBroken

_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS = re.compile(r"[0-9]{1,19}")


class ConnOwner(Protocol):
    def put_back(self, conn: Conn) -> None: ...

    def discard(self, conn: Conn) -> None: ...


class Response:
    """Status and headers of a response whose body is read from the connection on demand."""

    def __init__(
        self,
        owner: ConnOwner,
        conn: Conn,
        status: int,
        headers: dict[str, str],
        *,
        head: bool,
        reusable: bool,
    ) -> None:
        self._owner = owner
        self._conn: Conn | None = conn
        self.status, self.headers = status, headers
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        self._reusable = reusable and "close" not in tokens and status != 101
        codings = [c.strip().lower() for c in headers.get("transfer-encoding", "").split(",") if c.strip()]
        self._chunked = bool(codings) and codings[-1] == "chunked"
        self._remaining: int | None = None  # None: until the connection closes
        if head or status in (204, 304) or 100 <= status < 200:
            self._remaining = 0
        elif codings:
            # RFC 9112 6.3: Transfer-Encoding overrides Content-Length, and such a message must
            # not be followed by another on the same connection. Not chunked last: until close.
            self._reusable = self._reusable and "content-length" not in headers and self._chunked
        else:
            length = headers.get("content-length")
            if length is not None:
                values = {v.strip() for v in length.split(",")}
                if len(values) != 1 or not _DIGITS.fullmatch(next(iter(values))):
                    raise BadResponse(f"bad Content-Length: {length[:40]!r}")
                self._remaining = int(next(iter(values)))
            else:
                self._reusable = False
        self._chunk_left = 0
        self._in_chunks = False  # past the first chunk: a CRLF ends each chunk's data
        self._done = self._remaining == 0

    async def views(self, min_bytes: int = 1) -> AsyncIterator[memoryview]:
        """The body as views into the connection buffer, each valid until the next one is asked for.

        Waits for `min_bytes` (or the rest of the body) before yielding, so a fast stream costs
        one iteration per buffer-full, not one per TCP segment.
        """
        conn = self._live()
        while not self._done:
            if self._chunked:
                if self._chunk_left == 0:
                    await self._next_chunk()
                    if self._done:
                        return
                budget = self._chunk_left
            else:
                budget = self._remaining if self._remaining is not None else len(conn.buf)
            want = min(budget, min_bytes)
            if not await conn.fill(want) and conn.available == 0:
                if self._remaining is None and not self._chunked and conn.error is None:
                    self._done = True
                    return
                raise conn.broken("connection closed before the body was complete")
            n = min(conn.available, budget)
            view = conn.view[conn.start : conn.start + n]
            try:
                yield view
            finally:
                view.release()
            conn.consume(n)
            if self._chunked:
                self._chunk_left -= n
            elif self._remaining is not None:
                self._remaining -= n
                self._done = self._remaining == 0

    def _live(self) -> Conn:
        if self._conn is None:
            raise ConnectionBroken("the response was already released")
        return self._conn

    async def pour(
        self, sink: Callable[[memoryview], None], pace: Callable[[int], float] | None = None
    ) -> None:
        """Hand the body to `sink` block by block, each view valid only during the call.

        For a Content-Length body the blocks are given from inside the receive callback, and the
        next block is received into the same buffer: no task switch and no flow-control pause per
        block. `pace(n)` (optional) returns how long to stop reading after `n` bytes. Errors from
        `sink` are raised here. Other framings go through `views()`.
        """
        conn = self._live()
        if self._chunked or self._remaining is None:
            async for view in self.views(BUFFER_BYTES // 2):
                sink(view)
                if pace is not None and (delay := pace(len(view))) > 0:
                    await asyncio.sleep(delay)
            return
        assert self._remaining is not None
        # What is already buffered goes first; sink mode starts only once the buffer is empty,
        # with no await in between, so no byte can land in the buffer behind the sink's back.
        while conn.available and self._remaining:
            n = min(conn.available, self._remaining)
            block = conn.view[conn.start : conn.start + n]
            try:
                sink(block)
            finally:
                block.release()
            conn.consume(n)
            self._remaining -= n
            if pace is not None and (delay := pace(n)) > 0:
                await asyncio.sleep(delay)
        if self._remaining and not conn.eof:
            self._remaining = await conn.run_sink(sink, self._remaining, pace)
        if self._remaining:
            raise conn.broken("connection closed before the body was complete")
        self._done = True

    async def _next_chunk(self) -> None:
        conn = self._live()
        if self._in_chunks:
            if await conn.read_line() != b"":
                raise BadResponse("malformed chunked body")
        line = await conn.read_line()
        digits = line.split(b";")[0].strip()
        # Hex digits only: int() would also take "-6", "0x5" or "1_0", and a negative size
        # would walk the buffer backwards.
        if not _HEX.fullmatch(digits):
            raise BadResponse(f"malformed chunk size: {digits[:20]!r}")
        size = int(digits, 16)
        self._in_chunks = True
        if size == 0:
            trailer_bytes = 0
            while trailer := await conn.read_line():  # trailers, up to the empty line
                trailer_bytes += len(trailer)
                if trailer_bytes > MAX_HEAD_BYTES:
                    raise BadResponse("chunked trailers too large")
            self._done = True
        self._chunk_left = size

    async def chunks(self, size: int | None = None) -> AsyncIterator[bytes]:
        """The body as bytes objects (copies), of at most `size` bytes when given."""
        async for view in self.views(size or 1):
            if size is None or len(view) <= size:
                yield bytes(view)
            else:
                for i in range(0, len(view), size):
                    yield bytes(view[i : i + size])

    async def read(self) -> bytes:
        parts = [bytes(v) async for v in self.views(BUFFER_BYTES)]
        return b"".join(parts)

    def release(self) -> None:
        """Give the connection back when the body was read to the end, else close it."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        if self._done and self._reusable:  # put_back checks that nothing is left unread
            self._owner.put_back(conn)
        else:
            self._owner.discard(conn)

    def close(self) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        self._owner.discard(conn)
