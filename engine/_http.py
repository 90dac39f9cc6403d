"""A small HTTP/1.1 client on asyncio: a keep-alive pool and responses read in place.

Why not aiohttp here (it still serves `batuta hf serve`): importing it costs ~130 ms, most of
a no-op push, and its body reader copies every received byte twice. Here a connection is an
asyncio BufferedProtocol: the kernel writes the body straight into the connection's buffer and
the caller gets memoryviews of it (`Response.views`), which the downloader hands to pwrite.

Scope is what the Hub protocol needs: GET/HEAD/POST/PUT/DELETE, Content-Length and chunked
bodies, keep-alive, TLS with the system trust store, HTTP proxies from the environment
(`https_proxy` / `http_proxy` / `all_proxy`, `no_proxy`; https through a CONNECT tunnel), no
compression, no cookies.
Redirects, retries and error mapping are the caller's (engine/_hub.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlencode, urlsplit

BUFFER_BYTES = 512 << 10  # per connection; bounds memory at 32 connections to 16 MiB
MAX_HEAD_BYTES = 64 << 10
# A host with a broken IPv6 route must not eat the whole connect timeout before IPv4 is tried
# (RFC 8305; aiohttp and curl do the same).
HAPPY_EYEBALLS_S = 0.25
IDLE_EXPIRY_S = 10.0  # servers close idle connections after 5-75 s; do not reuse old ones
_SAFE_URL_CHARS = "/%:@!$&'()*+,;=-._~?"
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS = re.compile(r"[0-9]{1,19}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

Params = Mapping[str, str] | list[tuple[str, str]] | None


class HttpError(Exception):
    """Base of the errors this module raises (besides TimeoutError)."""


class ConnectFailed(HttpError):
    """No connection could be opened (DNS, refused, TLS handshake).

    `permanent`: retrying cannot help (the certificate is not trusted or not for this host).
    """

    def __init__(self, message: str, os_error: OSError | None = None, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.os_error, self.permanent = os_error, permanent


class ConnectionBroken(HttpError):
    """The connection closed or reset before the response was complete."""


class BadResponse(HttpError):
    """The server's bytes are not HTTP/1.1."""


_ssl_context: Any = None


def _tls_context() -> Any:
    # Loading the trust store costs ~40 ms: only for https, and once per process.
    global _ssl_context
    if _ssl_context is None:
        import ssl

        _ssl_context = ssl.create_default_context()
    return _ssl_context


class Proxy(NamedTuple):
    host: str
    port: int
    auth: str | None  # the Proxy-Authorization value, from the proxy URL's user:password
    label: str  # http://host:port, without credentials: the only form shown in errors

    def __repr__(self) -> str:
        return f"Proxy({self.label})"  # never the credentials, even base64-encoded


_MALFORMED_PROXY = "malformed proxy setting (percent-encode special characters in its user name and password)"
_KNOWN_SCHEMES = frozenset({"http", "https", "socks4", "socks4a", "socks5", "socks5h"})


def proxy_for(scheme: str, host: str, port: int, env: Mapping[str, str]) -> Proxy | None:
    """The proxy the environment names for `scheme://host:port`, as curl and requests read it.

    Raises ConnectFailed (permanent) for a proxy it cannot use; messages never repeat the
    setting itself, which may hold a password.
    """
    if not any(k.lower().endswith("_proxy") for k in env):
        return None
    # Lower-case names win over upper-case ones, as in curl and requests.
    found = sorted((k.islower(), k.lower()[:-6], v) for k, v in env.items() if k.lower().endswith("_proxy"))
    proxies = {name: value for _, name, value in found if value}
    url = proxies.get(scheme) or proxies.get("all")
    if not url or bypassed(host, port, proxies.get("no", "")):
        return None
    try:
        p = urlsplit(url if "://" in url else f"http://{url}")
        proxy_host, proxy_port = p.hostname, p.port or 80
    except ValueError:
        raise ConnectFailed(_MALFORMED_PROXY, permanent=True) from None
    if p.scheme != "http":
        shown = f"{p.scheme}:// " if p.scheme in _KNOWN_SCHEMES else ""
        raise ConnectFailed(f"unsupported {shown}proxy: only http:// proxies are supported", permanent=True)
    if not proxy_host or p.path not in ("", "/") or p.query or p.fragment:
        raise ConnectFailed(_MALFORMED_PROXY, permanent=True)
    auth = None
    if p.username is not None:
        import base64

        pair = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
        auth = "Basic " + base64.b64encode(pair).decode()
    return Proxy(proxy_host, proxy_port, auth, f"http://{_authority(proxy_host, proxy_port, -1)}")


def _authority(host: str, port: int, default_port: int) -> str:
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    return host if port == default_port else f"{host}:{port}"


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether `no_proxy` exempts `host:port`: `*` alone, names and their subdomains (with an
    optional port), IP addresses and CIDR blocks."""
    if no_proxy.strip() == "*":
        return True
    host = host.strip("[]").lower().rstrip(".")
    import ipaddress

    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if not entry or entry == "*":
            continue
        if "/" in entry:
            try:
                if ip is not None and ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry_port = None
        if entry.startswith("["):  # [v6]:port
            entry, _, rest = entry[1:].partition("]")
            entry_port = rest[1:] or None
        elif entry.count(":") == 1:
            entry, entry_port = entry.split(":")
        if entry_port is not None and entry_port != str(port):
            continue
        entry = entry.lstrip(".").rstrip(".")
        if host == entry or (ip is None and host.endswith("." + entry)):
            return True
    return False


def _os_reason(exc: OSError) -> str:
    """`connection refused`, not `connect call failed ('10.0.0.1', 443)`: the caller names the host."""
    if exc.errno and exc.errno > 0 and not hasattr(exc, "reason"):  # ssl errors carry .reason
        return os.strerror(exc.errno).lower()
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def request_target(url: str, params: Params = None) -> tuple[str, str, int, str]:
    """(scheme, host, port, path?query) of `url`, with `params` appended and unsafe bytes quoted."""
    p = urlsplit(url)
    if p.scheme not in ("http", "https") or not p.hostname:
        raise BadResponse(f"unsupported URL: {url.split('?')[0]}")
    target = quote(p.path or "/", safe=_SAFE_URL_CHARS)
    query = quote(p.query, safe=_SAFE_URL_CHARS + "=")
    if params:
        extra = urlencode(list(params.items()) if isinstance(params, Mapping) else params)
        query = f"{query}&{extra}" if query else extra
    if query:
        target += "?" + query
    port = p.port or (443 if p.scheme == "https" else 80)
    return p.scheme, p.hostname, port, target


class _Conn(asyncio.BufferedProtocol):
    """One connection: received bytes land in `buf[start:end]` until the reader consumes them."""

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
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
        if self.end == len(self.buf) and self.transport is not None:
            # Full: stop reading until the consumer frees room (flow control, bounded memory).
            self.transport.pause_reading()
            self.paused = True
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
            if self.end == len(self.buf) and self.transport is not None:
                self.transport.pause_reading()
                self.paused = True
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

    def stop_sink(self) -> None:
        self.sink = self.pace = None
        if self.pace_timer is not None:
            self.pace_timer.cancel()
            self.pace_timer = None
            if self.transport is not None and not self.paused:
                self.transport.resume_reading()

    async def wait_sink(self, stall_s: float) -> None:
        """Wait until sink mode ends: body complete, sink failed, or the connection closed."""
        while self.sink is not None and not self.eof:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(stall_s):
                    await self.waiter
            except TimeoutError:
                if self.pace_timer is None and time.monotonic() - self.last_rx >= stall_s:
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
        if self.paused and self.transport is not None and self.end < len(self.buf):
            self.paused = False
            self.transport.resume_reading()

    @property
    def available(self) -> int:
        return self.end - self.start

    async def fill(self, want: int, stall_s: float) -> bool:
        """Wait until `want` bytes are buffered (capped by the buffer); False at EOF with fewer."""
        want = min(want, len(self.buf))
        while self.available < want:
            if self.eof:
                return False
            if self.start and self.start + want > len(self.buf):
                self._compact()  # no view is lent out while filling
            if self.paused and self.transport is not None and self.end < len(self.buf):
                self.paused = False
                self.transport.resume_reading()
            self.want = want
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(stall_s):
                    await self.waiter
            except TimeoutError:
                # A trickle is not a stall: only time without any byte counts.
                if time.monotonic() - self.last_rx >= stall_s:
                    raise
            finally:
                self.waiter = None
                self.want = 1
        return True

    async def read_line(self, stall_s: float, limit: int = MAX_HEAD_BYTES) -> bytes:
        while True:
            idx = self.buf.find(b"\r\n", self.start, self.end)
            if idx >= 0:
                line = bytes(self.buf[self.start : idx])
                self.consume(idx + 2 - self.start)
                return line
            if self.available >= limit:
                raise BadResponse("header line too long")
            if not await self.fill(self.available + 1, stall_s):
                raise self.broken("connection closed in the response head")

    def broken(self, what: str) -> ConnectionBroken:
        reason = f": {self.error}" if self.error else ""
        return ConnectionBroken(what + reason)

    # -- writer side ---------------------------------------------------------------------------

    async def write(self, data: bytes | memoryview, stall_s: float) -> None:
        if self.transport is None or self.transport.is_closing():
            raise self.broken("connection closed while sending the request")
        self.transport.write(data)
        if self.write_paused is not None:
            # The peer stopped reading: the same watchdog as for a peer that stops sending.
            async with asyncio.timeout(stall_s):
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


class Response:
    """Status and headers of a response whose body is read from the connection on demand."""

    def __init__(
        self, pool: Pool, conn: _Conn, url: str, status: int, headers: dict[str, str], head: bool
    ) -> None:
        self._pool = pool
        self._conn: _Conn | None = conn
        self.url, self.status, self.headers = url, status, headers
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        self._reusable = "close" not in tokens and status != 101
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
        conn, stall = self._live(), self._pool.stall_s
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
            if not await conn.fill(want, stall) and conn.available == 0:
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

    def _live(self) -> _Conn:
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
        conn, stall = self._live(), self._pool.stall_s
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
            conn.sink, conn.sink_left, conn.sink_error, conn.pace = sink, self._remaining, None, pace
            try:
                await conn.wait_sink(stall)
            finally:
                self._remaining = conn.sink_left
                error, conn.sink_error = conn.sink_error, None
                conn.stop_sink()
            if error is not None:
                raise error
        if self._remaining:
            raise conn.broken("connection closed before the body was complete")
        self._done = True

    async def _next_chunk(self) -> None:
        conn, stall = self._live(), self._pool.stall_s
        if self._in_chunks:
            if await conn.read_line(stall) != b"":
                raise BadResponse("malformed chunked body")
        line = await conn.read_line(stall)
        digits = line.split(b";")[0].strip()
        # Hex digits only: int() would also take "-6", "0x5" or "1_0", and a negative size
        # would walk the buffer backwards.
        if not _HEX.fullmatch(digits):
            raise BadResponse(f"malformed chunk size: {digits[:20]!r}")
        size = int(digits, 16)
        self._in_chunks = True
        if size == 0:
            trailer_bytes = 0
            while trailer := await conn.read_line(stall):  # trailers, up to the empty line
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
        if self._done and self._reusable and conn.available == 0 and not conn.eof:
            self._pool.put_back(conn)
        else:
            self._pool.discard(conn)

    def close(self) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        self._pool.discard(conn)


Body = bytes | AsyncIterator[bytes] | None


_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_MAX_INTERIM = 8


class _Waiter:
    """A request waiting for a connection slot; handed a connection to its host when one frees."""

    __slots__ = ("key", "fut", "reserved")

    def __init__(self, key: tuple[str, str, int], fut: asyncio.Future[_Conn | None]) -> None:
        self.key, self.fut = key, fut
        self.reserved = False  # woken with a freed slot kept for it


class Pool:
    """Keep-alive connections per origin, at most `limit` open at once."""

    def __init__(self, *, limit: int, connect_timeout_s: float, stall_s: float, user_agent: str) -> None:
        self.limit, self.connect_timeout_s, self.stall_s = limit, connect_timeout_s, stall_s
        self.user_agent = user_agent
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._open: set[_Conn] = set()
        self._waiters: deque[_Waiter] = deque()
        # Slots freed for woken waiters that have not run yet: a request arriving meanwhile must
        # queue behind them, not take the slot (no starvation under churn).
        self._reserved = 0
        self._closed = False
        self._routes: dict[tuple[str, str, int], Proxy | None] = {}

    def _route(self, key: tuple[str, str, int]) -> Proxy | None:
        if key not in self._routes:
            self._routes[key] = proxy_for(key[0], key[1], key[2], os.environ)
        return self._routes[key]

    def _head(
        self,
        method: str,
        host: str,
        port: int,
        scheme: str,
        target: str,
        headers: Mapping[str, str],
        body: Body,
    ) -> bytes:
        given = {k.lower() for k in headers}
        lines = [f"{method} {target} HTTP/1.1"]
        if "host" not in given:
            lines.append(f"Host: {_authority(host, port, 443 if scheme == 'https' else 80)}")
        if "user-agent" not in given:
            lines.append(f"User-Agent: {self.user_agent}")
        if "accept-encoding" not in given:
            lines.append("Accept-Encoding: identity")  # bodies are never decoded here
        for k, v in headers.items():
            if not _TOKEN.fullmatch(k) or any(c in v for c in "\r\n\0"):
                raise ValueError(f"invalid header {k!r}: a bad name or a line break in its value")
            lines.append(f"{k}: {v}")
        if isinstance(body, bytes):
            if "content-length" not in given:
                lines.append(f"Content-Length: {len(body)}")
        elif body is None and method in ("POST", "PUT", "PATCH") and "content-length" not in given:
            lines.append("Content-Length: 0")
        elif body is not None and "content-length" not in given:
            raise ValueError("a streamed body needs an explicit Content-Length")
        try:
            return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError("a header value holds characters outside latin-1") from None

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Params = None,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
    ) -> Response:
        """Send a request and return once the response head is in; the caller must release it."""
        scheme, host, port, target = request_target(url, params)
        key = (scheme, host, port)
        proxy = self._route(key)
        extra = dict(headers or {})
        if proxy is not None and scheme == "http":
            # Plain http through a proxy: the request names the whole URL (absolute form).
            target = f"http://{_authority(host, port, 80)}{target}"
            if proxy.auth:
                extra["Proxy-Authorization"] = proxy.auth
        head = self._head(method, host, port, scheme, target, extra, body)
        while True:
            conn, reused = await self._checkout(key)
            sent = False
            try:
                try:
                    await self._send(conn, head, body)
                    sent = True
                except (ConnectionBroken, ConnectionError):
                    # The server may answer before reading the whole body (401, 413) and close:
                    # its answer, when it is there, says more than the broken pipe.
                    if not conn.available:
                        raise
                status, resp_headers = await self._read_head(conn)
            except (ConnectionBroken, ConnectionError) as exc:
                self.discard(conn)
                # The server may close an idle keep-alive connection just as we reuse it: one
                # more try on a new connection, if the request can be sent again and, unless it
                # is idempotent, did not reach the server whole.
                replayable = body is None or isinstance(body, bytes)
                if reused and replayable and (method in _IDEMPOTENT or not sent):
                    continue
                if isinstance(exc, ConnectionBroken):
                    raise
                raise ConnectionBroken(f"connection lost: {exc}") from exc
            except BaseException:
                self.discard(conn)
                raise
            if status == 407 and proxy is not None and scheme == "http":
                self.discard(conn)
                raise ConnectFailed(f"proxy {proxy.label} refused the request (HTTP 407)", permanent=True)
            try:
                resp = Response(self, conn, url, status, resp_headers, head=method == "HEAD")
            except BaseException:
                self.discard(conn)
                raise
            if not sent:
                resp._reusable = False
            return resp

    async def _send(self, conn: _Conn, head: bytes, body: Body) -> None:
        if isinstance(body, bytes) and len(body) <= 64 << 10:
            await conn.write(head + body, self.stall_s)
            return
        await conn.write(head, self.stall_s)
        if isinstance(body, bytes):
            await conn.write(body, self.stall_s)
        elif body is not None:
            async for block in body:
                await conn.write(block, self.stall_s)

    async def _read_head(self, conn: _Conn) -> tuple[int, dict[str, str]]:
        for _ in range(_MAX_INTERIM):
            status_line = await conn.read_line(self.stall_s)
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise BadResponse(f"not an HTTP/1.x response: {status_line[:40]!r}")
            status = int(parts[1])
            if not 100 <= status <= 999:
                raise BadResponse(f"bad status line: {status_line[:40]!r}")
            headers: dict[str, str] = {}
            size = len(status_line)
            while line := await conn.read_line(self.stall_s):
                size += len(line)
                if size > MAX_HEAD_BYTES:
                    raise BadResponse("response head too large")
                name, sep, value = line.decode("latin-1").partition(":")
                if not sep or not _TOKEN.fullmatch(name):
                    raise BadResponse(f"bad header line: {line[:40]!r}")
                k, v = name.lower(), value.strip()
                headers[k] = f"{headers[k]}, {v}" if k in headers else v
            if 100 <= status < 200 and status != 101:
                continue  # an interim response (100 Continue): the real one follows
            if parts[0] == b"HTTP/1.0" and "keep-alive" not in headers.get("connection", "").lower():
                headers["connection"] = "close"
            return status, headers
        raise BadResponse("too many interim responses")

    async def _checkout(self, key: tuple[str, str, int]) -> tuple[_Conn, bool]:
        if self._closed:
            raise ConnectionBroken("the connection pool is closed")
        now = time.monotonic()
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            # Bytes that arrived while idle belong to no request: such a connection is out of step.
            if conn.usable and now - conn.idle_since < IDLE_EXPIRY_S:
                return conn, True
            self._drop(conn)
        handed = await self._acquire_slot(key)
        if handed is not None:
            return handed, True
        conn = _Conn(key)
        self._open.add(conn)
        try:
            await self._connect(conn)
        except BaseException:
            self._drop(conn)
            raise
        return conn, False

    async def _acquire_slot(self, key: tuple[str, str, int]) -> _Conn | None:
        """Wait for room to open a connection; or get one to `key` handed over (returned)."""
        while len(self._open) + self._reserved >= self.limit:
            if self._evict_idle():
                continue
            waiter = _Waiter(key, asyncio.get_running_loop().create_future())
            self._waiters.append(waiter)
            try:
                handed = await waiter.fut
            except asyncio.CancelledError:
                if waiter.fut.done() and not waiter.fut.cancelled():
                    # We were given a slot or a connection as we were cancelled: pass it on.
                    got = waiter.fut.result()
                    if got is not None:
                        self.put_back(got)
                    elif waiter.reserved:
                        self._reserved -= 1
                        self._wake_waiter()
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if handed is not None:
                return handed
            if waiter.reserved:
                self._reserved -= 1
            if self._closed:
                raise ConnectionBroken("the connection pool is closed")
            if waiter.reserved:
                return None  # the slot kept for us; the caller opens the connection without awaiting
        return None

    def _wake_waiter(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.fut.done():
                waiter.reserved = True
                self._reserved += 1
                waiter.fut.set_result(None)
                return

    def _evict_idle(self) -> bool:
        for conns in self._idle.values():
            if conns:
                self._drop(conns.pop(0))
                return True
        return False

    async def _connect(self, conn: _Conn) -> None:
        scheme, host, port = conn.key
        loop = asyncio.get_running_loop()
        tls = _tls_context() if scheme == "https" else None
        proxy = self._route(conn.key)
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                if proxy is None:
                    await loop.create_connection(
                        lambda: conn,
                        host,
                        port,
                        ssl=tls,
                        server_hostname=host if tls else None,
                        happy_eyeballs_delay=HAPPY_EYEBALLS_S,
                    )
                    return
                try:
                    await loop.create_connection(
                        lambda: conn, proxy.host, proxy.port, happy_eyeballs_delay=HAPPY_EYEBALLS_S
                    )
                except OSError as exc:
                    reason = _os_reason(exc)
                    raise ConnectFailed(f"cannot reach proxy {proxy.label}: {reason}", exc) from exc
                if tls is not None:
                    await self._tunnel(conn, proxy, host, port)
                    assert conn.transport is not None
                    conn.transport = await loop.start_tls(conn.transport, conn, tls, server_hostname=host)
        except TimeoutError:
            raise  # an OSError too, but the caller reports timeouts as such
        except OSError as exc:
            reason = _os_reason(exc)
            verify = getattr(exc, "verify_message", None)  # ssl.SSLCertVerificationError
            if verify is not None:
                raise ConnectFailed(f"TLS certificate not accepted: {verify}", exc, permanent=True) from exc
            if proxy is not None:
                reason = f"{reason} (through proxy {proxy.label})"
            raise ConnectFailed(reason, exc) from exc

    async def _tunnel(self, conn: _Conn, proxy: Proxy, host: str, port: int) -> None:
        """CONNECT through the proxy; TLS then runs end to end, so the proxy sees no header."""
        authority = _authority(host, port, -1)
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", f"User-Agent: {self.user_agent}"]
        if proxy.auth:
            lines.append(f"Proxy-Authorization: {proxy.auth}")
        await conn.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), self.stall_s)
        try:
            status, _ = await self._read_head(conn)
        except (HttpError, ConnectionError) as exc:
            raise ConnectFailed(f"proxy {proxy.label} broke the tunnel to {authority}: {exc}") from exc
        if not 200 <= status < 300 or conn.available:
            raise ConnectFailed(
                f"proxy {proxy.label} refused the tunnel to {authority} (HTTP {status})",
                permanent=status in (403, 407),
            )

    def put_back(self, conn: _Conn) -> None:
        if not conn.usable or self._closed:
            self._drop(conn)
            return
        head = next((w for w in self._waiters if not w.fut.done()), None)
        if head is not None:
            if head.key == conn.key:
                self._waiters.remove(head)
                head.fut.set_result(conn)  # keep-alive: straight to the next request for this host
            else:
                self._drop(conn)  # the first in line wants another host: free the slot for it
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.key, []).append(conn)

    def discard(self, conn: _Conn) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
        self._drop(conn)

    def _drop(self, conn: _Conn) -> None:
        conn.close()
        if conn in self._open:
            self._open.discard(conn)
            self._wake_waiter()

    async def aclose(self) -> None:
        self._closed = True
        self._idle.clear()
        waiting = list(self._waiters)
        self._waiters.clear()  # closing wakes nobody with a slot
        for conn in list(self._open):
            self._drop(conn)
        for waiter in waiting:
            if not waiter.fut.done():
                waiter.fut.set_result(None)  # they see the pool closed and fail
