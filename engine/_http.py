"""A small HTTP/1.1 client on asyncio: a keep-alive pool and responses read in place.

Why not aiohttp here (it still serves `batuta hf serve`): importing it costs ~130 ms, most of
a no-op push, and its body reader copies every received byte twice. Here a connection is an
asyncio BufferedProtocol (engine/_conn.py): the kernel writes the body straight into the
connection's buffer and the caller gets memoryviews of it, which the downloader hands to pwrite.
Proxy selection is engine/_proxy.py.

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
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from engine._conn import (
    BUFFER_BYTES,
    MAX_HEAD_BYTES,
    BadResponse,
    Conn,
    ConnectFailed,
    ConnectionBroken,
    ConnectTimedOut,
    HttpError,
)
from engine._proxy import DEFAULT_PORTS, Proxy, authority, proxy_for, public_url
from engine._response import Response

# A host with a broken IPv6 route must not eat the whole connect timeout before IPv4 is tried
# (RFC 8305; aiohttp and curl do the same).
HAPPY_EYEBALLS_S = 0.25
IDLE_EXPIRY_S = 10.0  # servers close idle connections after 5-75 s; do not reuse old ones
_SAFE_URL_CHARS = "/%:@!$&'()*+,;=-._~?"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

Params = Mapping[str, str] | list[tuple[str, str]] | None
# Callers (engine/_hub.py, the tests) take the connection layer's errors from here.
__all__ = [
    "BUFFER_BYTES",
    "BadResponse",
    "ConnectFailed",
    "ConnectTimedOut",
    "ConnectionBroken",
    "HttpError",
    "Pool",
    "Response",
]


_ssl_context: Any = None


def _tls_context() -> Any:
    # Loading the trust store costs ~40 ms: only for https, and once per process.
    global _ssl_context
    if _ssl_context is None:
        import ssl

        _ssl_context = ssl.create_default_context()
    return _ssl_context


def _os_reason(exc: OSError) -> str:
    """`connection refused`, not `connect call failed ('10.0.0.1', 443)`: the caller names the host."""
    if exc.errno and exc.errno > 0 and not hasattr(exc, "reason"):  # ssl errors carry .reason
        return os.strerror(exc.errno).lower()
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


# The resolver's definite "no such name" (a typo, or no network at all): retrying for half a
# minute cannot change it. EAI_AGAIN, a resolver that did not answer, is still retried.
_NO_SUCH_HOST = {
    socket.EAI_NONAME,
    *(getattr(socket, n) for n in ("EAI_NODATA", "EAI_ADDRFAMILY") if hasattr(socket, n)),
}


def _unknown_host(exc: OSError) -> bool:
    return isinstance(exc, socket.gaierror) and exc.errno in _NO_SUCH_HOST


def request_target(url: str, params: Params = None) -> tuple[str, str, int, str]:
    """(scheme, host, port, path?query) of `url`, with `params` appended and unsafe bytes quoted."""
    p = urlsplit(url)
    if p.scheme not in ("http", "https") or not p.hostname:
        raise BadResponse(f"unsupported URL: {public_url(url)}")
    target = quote(p.path or "/", safe=_SAFE_URL_CHARS)
    query = quote(p.query, safe=_SAFE_URL_CHARS + "=")
    if params:
        extra = urlencode(list(params.items()) if isinstance(params, Mapping) else params)
        query = f"{query}&{extra}" if query else extra
    if query:
        target += "?" + query
    port = p.port or DEFAULT_PORTS[p.scheme]
    return p.scheme, p.hostname, port, target


Body = bytes | AsyncIterator[bytes] | None


_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_MAX_INTERIM = 8


class _Waiter:
    """A request waiting for a connection slot; handed a connection to its host when one frees."""

    __slots__ = ("key", "fut", "reserved")

    def __init__(self, key: tuple[str, str, int], fut: asyncio.Future[Conn | None]) -> None:
        self.key, self.fut = key, fut
        self.reserved = False  # woken with a freed slot kept for it


class Pool:
    """Keep-alive connections per origin, at most `limit` open at once."""

    def __init__(self, *, limit: int, connect_timeout_s: float, stall_s: float, user_agent: str) -> None:
        self.limit, self.connect_timeout_s, self.stall_s = limit, connect_timeout_s, stall_s
        self.user_agent = user_agent
        self._idle: dict[tuple[str, str, int], list[Conn]] = {}
        self._open: set[Conn] = set()
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
            lines.append(f"Host: {authority(host, port, DEFAULT_PORTS[scheme])}")
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
        timeout_s: float | None = None,
    ) -> Response:
        """Send a request and return once the response head is in; the caller must release it.

        `timeout_s` bounds this request's connect and each wait for a byte (its head, its body),
        in place of the pool's `connect_timeout_s` and `stall_s`.
        """
        scheme, host, port, target = request_target(url, params)
        key = (scheme, host, port)
        proxy = self._route(key)
        extra = dict(headers or {})
        if proxy is not None and scheme == "http":
            # Plain http through a proxy: the request names the whole URL (absolute form).
            target = f"http://{authority(host, port, 80)}{target}"
            if proxy.auth:
                extra["Proxy-Authorization"] = proxy.auth
        head = self._head(method, host, port, scheme, target, extra, body)
        while True:
            conn, reused = await self._checkout(key, timeout_s or self.connect_timeout_s)
            conn.stall_s = timeout_s or self.stall_s  # a connection serves requests of both kinds
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
                # An answer that came before the whole request went out leaves the stream unusable.
                return Response(self, conn, status, resp_headers, head=method == "HEAD", reusable=sent)
            except BaseException:
                self.discard(conn)
                raise

    async def _send(self, conn: Conn, head: bytes, body: Body) -> None:
        if isinstance(body, bytes) and len(body) <= 64 << 10:
            await conn.write(head + body)
            return
        await conn.write(head)
        if isinstance(body, bytes):
            await conn.write(body)
        elif body is not None:
            async for block in body:
                await conn.write(block)

    async def _read_head(self, conn: Conn) -> tuple[int, dict[str, str]]:
        for _ in range(_MAX_INTERIM):
            status_line = await conn.read_line()
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise BadResponse(f"not an HTTP/1.x response: {status_line[:40]!r}")
            status = int(parts[1])
            if not 100 <= status <= 999:
                raise BadResponse(f"bad status line: {status_line[:40]!r}")
            headers: dict[str, str] = {}
            size = len(status_line)
            while line := await conn.read_line():
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

    async def _checkout(self, key: tuple[str, str, int], connect_timeout_s: float) -> tuple[Conn, bool]:
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
        conn = Conn(key, self.stall_s)
        self._open.add(conn)
        try:
            await self._connect(conn, connect_timeout_s)
        except BaseException:
            self._drop(conn)
            raise
        return conn, False

    async def _acquire_slot(self, key: tuple[str, str, int]) -> Conn | None:
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
            if self._closed:  # only closing wakes a waiter without a slot
                raise ConnectionBroken("the connection pool is closed")
            self._reserved -= 1
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

    async def _connect(self, conn: Conn, timeout_s: float) -> None:
        scheme, host, port = conn.key
        loop = asyncio.get_running_loop()
        tls = _tls_context() if scheme == "https" else None
        proxy = self._route(conn.key)
        try:
            async with asyncio.timeout(timeout_s):
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
                    raise ConnectFailed(
                        f"cannot reach proxy {proxy.label}: {reason}", permanent=_unknown_host(exc)
                    ) from exc
                if tls is not None:
                    await self._tunnel(conn, proxy, host, port)
                    assert conn.transport is not None
                    conn.transport = await loop.start_tls(conn.transport, conn, tls, server_hostname=host)
        except TimeoutError as exc:
            # An OSError too, but the caller reports timeouts as such.
            raise ConnectTimedOut(f"no connection within {timeout_s:g} s") from exc
        except OSError as exc:
            reason = _os_reason(exc)
            verify = getattr(exc, "verify_message", None)  # ssl.SSLCertVerificationError
            if verify is not None:
                raise ConnectFailed(f"TLS certificate not accepted: {verify}", permanent=True) from exc
            if proxy is not None:
                reason = f"{reason} (through proxy {proxy.label})"
            raise ConnectFailed(reason, permanent=_unknown_host(exc)) from exc

    async def _tunnel(self, conn: Conn, proxy: Proxy, host: str, port: int) -> None:
        """CONNECT through the proxy; TLS then runs end to end, so the proxy sees no header."""
        target = authority(host, port, -1)
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}", f"User-Agent: {self.user_agent}"]
        if proxy.auth:
            lines.append(f"Proxy-Authorization: {proxy.auth}")
        await conn.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            status, _ = await self._read_head(conn)
        except (HttpError, ConnectionError) as exc:
            raise ConnectFailed(f"proxy {proxy.label} broke the tunnel to {target}: {exc}") from exc
        if not 200 <= status < 300 or conn.available:
            raise ConnectFailed(
                f"proxy {proxy.label} refused the tunnel to {target} (HTTP {status})",
                permanent=status in (403, 407),
            )

    def put_back(self, conn: Conn) -> None:
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

    def discard(self, conn: Conn) -> None:
        """Close a checked-out connection that must not be reused."""
        self._drop(conn)

    def _drop(self, conn: Conn) -> None:
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
