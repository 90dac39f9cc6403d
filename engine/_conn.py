"""One HTTP connection as an asyncio BufferedProtocol: its receive buffer and flow control.

The kernel writes received bytes straight into the connection's buffer (`get_buffer`); the
reader consumes them in place. In sink mode (`Response.pour`) each block is handed to a callback
from inside `buffer_updated` and the next block lands at the front of the same buffer. The HTTP
framing on top lives in engine/_http.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from engine._errors import mask

BUFFER_BYTES = 512 << 10  # per connection; bounds memory at 32 connections to 16 MiB
MAX_HEAD_BYTES = 64 << 10


class HttpError(Exception):
    """Base of the errors this module raises (besides TimeoutError).

    They quote bytes the server sent, so they mask the open clients' secrets as BatutaError
    does: they end up as the `__cause__` of one, in every traceback that shows it.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(mask(a) if isinstance(a, str) else a for a in args))


class ConnectFailed(HttpError):
    """No connection could be opened (DNS, refused, TLS handshake).

    `permanent`: retrying cannot help (the certificate is not trusted or not for this host).
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class ConnectTimedOut(TimeoutError):
    """No connection was opened within the connect timeout: reported as a timeout, and retried as
    one, but known to mean that nothing answered at all (engine/_hub.py `_unopened`)."""


class ConnectionBroken(HttpError):
    """The connection closed or reset before the response was complete."""


class BadResponse(HttpError):
    """The server's bytes are not HTTP/1.1."""


class Conn(asyncio.BufferedProtocol):
    """One connection: received bytes land in `buf[start:end]` until the reader consumes them."""

    def __init__(self, key: tuple[str, str, int], stall_s: float) -> None:
        self.key, self.stall_s = key, stall_s
        self.buf = bytearray(BUFFER_BYTES)
        self.view = memoryview(self.buf)
        self.start = self.end = 0
        self.want = 1
        self.eof = False
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.write_paused: asyncio.Future[None] | None = None
        self.idle_since = 0.0
        self.last_rx = time.monotonic()
        # Sink mode (Response.pour): blocks go to `sink` from buffer_updated, up to `sink_left`.
        self.sink: Callable[[memoryview], None] | None = None
        self.sink_left = 0
        self.sink_error: BaseException | None = None
        self.pace: Callable[[int], float] | None = None
        self.pace_timer: asyncio.TimerHandle | None = None

    # -- protocol callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        # Never compacts: the reader may hold a view of buf[start:end]. Reading is paused while
        # the buffer is full, and the reader compacts before resuming.
        return self.view[self.end :]

    def buffer_updated(self, nbytes: int) -> None:
        self.last_rx = time.monotonic()
        if self.sink is not None:
            self._to_sink(nbytes)
            return
        self.end += nbytes
        if self.end == len(self.buf):
            self._pause()  # full: no reading until the consumer frees room (bounded memory)
        if self.end - self.start >= self.want or self.paused:
            self._wake()

    def _to_sink(self, nbytes: int) -> None:
        assert self.sink is not None
        start = self.end
        self.end += nbytes
        take = min(nbytes, self.sink_left)
        block = self.view[start : start + take]
        try:
            self.sink(block)
        except BaseException as exc:  # handed to the waiting task, raised there
            self.sink_error, self.sink = exc, None
            self._wake()
            return
        finally:
            block.release()
        self.sink_left -= take
        if take == nbytes:
            self.start = self.end = 0  # the next block lands at the front again
        else:
            self.start = start + take  # bytes past the body stay; the connection is not reused
            if self.end == len(self.buf):
                self._pause()
        if self.sink_left == 0:
            self.sink = None
            self._wake()
            return
        if self.pace is not None and (delay := self.pace(take)) > 0 and self.transport is not None:
            # --max-rate: stop reading for as long as the byte budget says.
            self.transport.pause_reading()
            self.pace_timer = asyncio.get_running_loop().call_later(delay, self._end_pace)

    def _end_pace(self) -> None:
        self.pace_timer = None
        self.last_rx = time.monotonic()  # a pause we chose is not the server stalling
        if self.transport is not None and not self.paused:
            self.transport.resume_reading()

    async def run_sink(
        self, sink: Callable[[memoryview], None], n: int, pace: Callable[[int], float] | None
    ) -> int:
        """Hand the next `n` received bytes to `sink` from `buffer_updated`; return how many
        did not arrive (the connection ended). An error raised by `sink` is raised here.

        The buffer must be empty: what arrives from now on goes to the sink, not the buffer.
        """
        self.sink, self.sink_left, self.sink_error, self.pace = sink, n, None, pace
        try:
            while self.sink is not None and not self.eof:
                await self._wait()
        finally:
            self.sink = self.pace = None
            if self.pace_timer is not None:
                self.pace_timer.cancel()
                self.pace_timer = None
                if self.transport is not None and not self.paused:
                    self.transport.resume_reading()
        error, self.sink_error = self.sink_error, None
        if error is not None:
            raise error
        return self.sink_left

    async def _wait(self) -> None:
        """Wait for a wake-up; raise TimeoutError once `stall_s` passed without a byte.

        A trickle is not a stall, nor is a pause that --max-rate chose.
        """
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self.stall_s):
                await self.waiter
        except TimeoutError:
            if self.pace_timer is None and time.monotonic() - self.last_rx >= self.stall_s:
                raise
        finally:
            self.waiter = None

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None:
            self.error = exc
        self.transport = None
        self._wake()
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)
        self.write_paused = None

    # -- reader side ---------------------------------------------------------------------------

    def _pause(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()
            self.paused = True

    def _resume_if_room(self) -> None:
        if self.paused and self.transport is not None and self.end < len(self.buf):
            self.paused = False
            self.transport.resume_reading()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _compact(self) -> None:
        n = self.end - self.start
        if self.start:
            self.buf[:n] = self.buf[self.start : self.end]
            self.start, self.end = 0, n

    def consume(self, n: int) -> None:
        """Mark `n` bytes as used; called only once no view of them is lent out."""
        self.start += n
        if self.start == self.end:
            self.start = self.end = 0
        elif self.paused:
            self._compact()
        self._resume_if_room()

    @property
    def available(self) -> int:
        return self.end - self.start

    async def fill(self, want: int) -> bool:
        """Wait until `want` bytes are buffered (capped by the buffer); False at EOF with fewer."""
        want = min(want, len(self.buf))
        while self.available < want:
            if self.eof:
                return False
            if self.start and self.start + want > len(self.buf):
                self._compact()  # no view is lent out while filling
            self._resume_if_room()
            self.want = want
            try:
                await self._wait()
            finally:
                self.want = 1
        return True

    async def read_line(self) -> bytes:
        while True:
            idx = self.buf.find(b"\r\n", self.start, self.end)
            if idx >= 0:
                line = self.view[self.start : idx].tobytes()
                self.consume(idx + 2 - self.start)
                return line
            if self.available >= MAX_HEAD_BYTES:
                raise BadResponse("header line too long")
            if not await self.fill(self.available + 1):
                raise self.broken("connection closed in the response head")

    def broken(self, what: str) -> ConnectionBroken:
        reason = f": {self.error}" if self.error else ""
        return ConnectionBroken(what + reason)

    # -- writer side ---------------------------------------------------------------------------

    async def write(self, data: bytes | memoryview) -> None:
        if self.transport is None or self.transport.is_closing():
            raise self.broken("connection closed while sending the request")
        self.transport.write(data)
        if self.write_paused is not None:
            # The peer stopped reading: the same watchdog as for a peer that stops sending.
            async with asyncio.timeout(self.stall_s):
                await self.write_paused
            if self.transport is None:
                raise self.broken("connection closed while sending the request")

    @property
    def usable(self) -> bool:
        """Open, nothing unread, no end seen: fit for the next request."""
        return self.transport is not None and not self.eof and self.available == 0

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()
            self.transport = None
        self.eof = True
