"""The HTTP core: one connection pool per run, per-host budgets, retries, error mapping.

Connections come from engine/_http.py. Every request goes through `send()` or `stream()`:
it waits for the host's token bucket, sends, follows redirects itself (the token is attached
only on the endpoint's origin), honours Retry-After for the whole host, backs off on 429/5xx
and network errors, and turns what is left into the BatutaError tree.
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urljoin, urlsplit

import anyio

from engine import _errors as E
from engine import _http
from engine._backoff import backoff_delay, is_retryable_status, parse_ratelimit, parse_retry_after
from engine._config import EngineConfig, HostLimits, origin_of, url_problem
from engine._events import EventSink, HostPaused, RetryScheduled, discard
from engine._huberrors import map_error
from engine._proxy import public_url
from engine._ratelimit import TokenBucket, acquire

USER_AGENT = "batuta/0.1.0; python"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
# Other hosts (CDN, storage) are not metered by the Hub; the bucket only carries Retry-After pauses.
_UNMETERED = HostLimits(rate_per_s=1e6, burst=1_000_000)


class FileSlice(NamedTuple):
    """A request body streamed from `length` bytes of `path` at `offset`, re-read on each attempt.

    Streaming keeps an upload's memory at one read block per request, where a `bytes` body is
    held whole and copied again on its way to the socket.
    """

    path: Path
    offset: int
    length: int


SLICE_BLOCK = 1 << 20


async def _stream_slice(body: FileSlice) -> AsyncIterator[bytes]:
    # Reads come from the page cache that hashing just filled: cheaper inline than on a thread.
    fd = os.open(body.path, os.O_RDONLY)
    try:
        done = 0
        while done < body.length:
            block = os.pread(fd, min(SLICE_BLOCK, body.length - done), body.offset + done)
            if not block:
                raise E.IntegrityError(
                    f"{body.path} shrank while being uploaded",
                    path=str(body.path),
                    expected=str(body.length),
                    actual=str(done),
                )
            done += len(block)
            yield block
    finally:
        os.close(fd)


Body = bytes | Callable[[], bytes] | FileSlice | None


class Ctx(NamedTuple):
    """What a request is about, so errors can name it: `revision 'v2' not found in acme/tiny`."""

    repo: str = ""
    revision: str = ""
    path: str = ""


NO_CTX = Ctx()


class HubResponse(NamedTuple):
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    url: str

    def json(self) -> Any:
        try:
            return jsonlib.loads(self.body)
        except ValueError as exc:
            head = self.body[:60].decode("utf-8", "replace").strip().replace("\n", " ")
            kind = "HTML" if head.lower().startswith(("<!doctype", "<html")) else "non-JSON data"
            raise E.ProtocolError(
                f"{_origin_str(self.url)} answered {kind}, not a Hub API response (is it a Hub endpoint?)",
                status=self.status,
                url=strip_query(self.url),
            ) from exc


class Stream:
    """An open streaming response: status, headers, final URL and its body in pieces."""

    def __init__(self, resp: _http.Response, url: str) -> None:
        self._resp, self.url = resp, url
        self.status = resp.status
        self.headers = resp.headers

    async def pour(self, sink: Callable[[memoryview], None], pace: Callable[[int], float] | None) -> None:
        """Hand the body to `sink` block by block as it is received (see `_http.Response.pour`)."""
        with self._errors():
            await self._resp.pour(sink, pace)

    async def iter_chunks(self, size: int | None = None) -> AsyncIterator[bytes]:
        """The body as bytes objects of at most `size` bytes (None: as they arrive)."""
        with self._errors():
            async for chunk in self._resp.chunks(size):
                yield chunk

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (_http.HttpError, ConnectionError) as exc:
            raise E.TransportError(
                f"connection broke while reading {strip_query(self.url)}", url=strip_query(self.url)
            ) from exc
        except TimeoutError as exc:
            raise E.TransferTimeoutError(
                f"no data for too long from {strip_query(self.url)}", url=strip_query(self.url)
            ) from exc


def _trace_id() -> str:
    # uuid4-shaped, without importing uuid (which imports platform: ~5 ms of start-up).
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


def strip_query(url: str) -> str:
    """The URL as errors and events show it: no user:password@, no query (signed URLs carry
    credentials there), no fragment."""
    return public_url(url)


def _origin_str(url: str) -> str:
    return public_url(url, path=False)


class HubClient:
    """Async client for the Hub's HTTP API; an async context manager owning one connection pool."""

    def __init__(self, config: EngineConfig, on_event: EventSink = discard) -> None:
        self.config = config
        self._on_event = on_event
        self._pool: _http.Pool | None = None
        self._buckets: dict[tuple[str, str, int, str], TokenBucket] = {}
        self.retries = 0
        self._secrets = contextlib.ExitStack()

    async def __aenter__(self) -> HubClient:
        # From here on every BatutaError masks the token and the endpoint's password, whatever
        # server text it quotes and wherever in the engine it is built (engine/_errors.py).
        self._secrets.enter_context(E.masking(self.config.token, *_url_secrets(self.config.endpoint)))
        # No cookies are kept at all, so nothing a CDN sets can follow a request to another host.
        self._pool = _http.Pool(
            limit=self.config.max_connections,
            connect_timeout_s=self.config.connect_timeout_s,
            stall_s=self.config.stall_timeout_s,
            user_agent=USER_AGENT,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        try:
            if self._pool is not None:
                await self._pool.aclose()
                self._pool = None
        finally:
            self._secrets.close()  # else a failed close would leave them masked for the process

    # -- URLs -------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.config.endpoint}{path}"

    def is_hub(self, url: str) -> bool:
        return origin_of(url) == self.config.endpoint_origin

    def _bucket(self, url: str) -> TokenBucket:
        scheme, host, port = origin = origin_of(url)
        if origin != self.config.endpoint_origin:  # is_hub(), without splitting the URL again
            kind, limits = "other", _UNMETERED
        elif "/resolve/" in urlsplit(url).path:
            kind, limits = "resolvers", self.config.resolve_limits
        else:
            kind, limits = "api", self.config.api_limits
        key = (scheme, host, port, kind)
        if key not in self._buckets:
            self._buckets[key] = TokenBucket(limits)
        return self._buckets[key]

    def _auth_headers(self, url: str, auth: bool) -> dict[str, str]:
        # The token goes to the endpoint's origin and nowhere else, whatever redirected us.
        if auth and self.config.token and self.is_hub(url):
            return {"Authorization": f"Bearer {self.config.token}"}
        return {}

    def _check_online(self) -> None:
        if self.config.offline:
            raise E.OfflineError("offline mode is on (HF_HUB_OFFLINE): no request is sent")

    # -- retry bookkeeping ------------------------------------------------------------------

    def _observe(self, url: str, headers: Mapping[str, str]) -> None:
        state = parse_ratelimit(headers.get("ratelimit"))  # the policy's quota and window go unused
        if state is None or state.reset_s > self.config.retry.max_wait_s:
            # A window that resets only after longer than we would wait for a Retry-After is not
            # waited out ahead of time: the server's own 429 then ends the run, saying how long.
            return
        pause = self._bucket(url).observe(state)
        if pause > 0:
            self._on_event(
                # The window's name is server text: masked like any server text in an error.
                HostPaused(_host(url), pause, E.mask(f"rate-limit window '{state.name}' exhausted"))
            )

    async def wait_retry(self, url: str, attempt: int, reason: str, retry_after: float | None) -> None:
        """Count a retry, say so (event) and sleep: Retry-After for the whole host, else backoff."""
        self.retries += 1
        if retry_after is not None:
            delay = retry_after
            # Retry-After speaks for the host, not the request: every task waits behind it.
            self._bucket(url).pause(delay)
            self._on_event(HostPaused(_host(url), delay, f"server asked to wait (HTTP {reason})"))
        else:
            delay = backoff_delay(attempt, self.config.retry)
        self._on_event(RetryScheduled(strip_query(url), attempt, delay, reason))
        await anyio.sleep(delay)

    # -- requests ---------------------------------------------------------------------------

    async def send(
        self,
        method: str,
        url: str,
        *,
        ctx: Ctx = NO_CTX,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        json: Any = None,
        auth: bool = True,
        follow: bool = True,
        ok: Callable[[int], bool] = lambda s: s < 400,
        answered_locally: Callable[[], bool] | None = None,
        timeout_s: float | None = None,
    ) -> HubResponse:
        """Send one request with retries; return the final response or raise a BatutaError.

        Redirects are followed by hand when `follow` is true, attaching the token only on the
        endpoint's origin. `ok` decides which statuses are returned instead of raised. `timeout_s`
        bounds each attempt's connect and each wait for a byte (default: the config's
        `connect_timeout_s` and `stall_timeout_s`); metadata requests pass `metadata_timeout_s`.
        `answered_locally` is asked once, the first time no connection can even be opened
        (nothing listens, no route, the connect timed out): True ends the request at once with
        that error instead of retrying, as the caller holds an answer of its own. A server that
        answers, even with a 5xx or a 429, is retried as usual.
        """
        if json is not None:
            body = jsonlib.dumps(json).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        resp, url, payload = await self._exchange(
            method,
            url,
            params=params,
            headers=headers,
            body=body,
            auth=auth,
            follow=follow,
            read=True,
            answered_locally=answered_locally,
            timeout_s=timeout_s,
        )
        response = HubResponse(resp.status, resp.headers, payload, url)
        if not ok(response.status):
            raise map_error(
                response,
                ctx,
                has_token=self._has_token(url),
                on_hub=self.is_hub(url),
                transfer="download" if method in ("GET", "HEAD") else "upload",
            )
        return response

    async def _exchange(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        auth: bool = True,
        follow: bool = True,
        read: bool,
        answered_locally: Callable[[], bool] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[_http.Response, str, bytes]:
        """The request loop of `send()` and `stream()`: host budget, redirects, retries.

        Returns the final response, its URL and (with `read`) its body. With `read` the response
        is released and a body that breaks off is retried like a failed connection; without it
        the caller owns the open response.
        """
        self._check_online()
        assert self._pool is not None, "HubClient used outside 'async with'"
        attempt, redirects = 0, 0
        while True:
            await acquire(self._bucket(url))
            req_headers = {
                # The trace id is for the Hub's logs; streamed bodies come from its CDN.
                **({"X-Amzn-Trace-Id": _trace_id()} if read else {}),
                **(headers or {}),
                **self._auth_headers(url, auth),
            }
            data: _http.Body
            if isinstance(body, FileSlice):
                data = _stream_slice(body)
                # An explicit length: storage services refuse chunked uploads.
                req_headers["Content-Length"] = str(body.length)
            else:
                data = body() if callable(body) else body
            try:
                resp = await self._pool.request(
                    method, url, params=params, headers=req_headers, body=data, timeout_s=timeout_s
                )
                try:
                    hdrs, status = resp.headers, resp.status
                    self._observe(url, hdrs)
                    if follow and status in REDIRECTS and "location" in hdrs:
                        await _drain(resp)
                        resp.release()
                        redirects += 1
                        if redirects > MAX_REDIRECTS:
                            raise E.ProtocolError(
                                f"too many redirects from {strip_query(url)}", url=strip_query(url)
                            )
                        url, params = redirect_target(url, hdrs["location"]), None
                        if status == 303:
                            method, body = "GET", None
                        continue
                    # Retry-After is read only from answers worth retrying, not from every 200.
                    retry_after = (
                        parse_retry_after(hdrs.get("retry-after")) if is_retryable_status(status) else None
                    )
                    if (
                        is_retryable_status(status)
                        and attempt < self.config.retry.max_retries
                        and (retry_after is None or retry_after <= self.config.retry.max_wait_s)
                    ):
                        attempt += 1
                        await _read_or_empty(resp)  # only keeps the connection reusable
                        resp.release()
                        await self.wait_retry(url, attempt, str(status), retry_after)
                        continue
                    payload = await resp.read() if read else b""
                except BaseException:
                    resp.release()
                    raise
            except (_http.ConnectFailed, _http.ConnectionBroken, TimeoutError, ConnectionError) as exc:
                reason = "timeout" if isinstance(exc, TimeoutError) else "connect"
                if answered_locally is not None and _unopened(exc):
                    ask, answered_locally = answered_locally, None
                    if ask():
                        raise self._transport_error(url, exc, attempt + 1) from exc
                if attempt < self.config.retry.max_retries and not _permanent(exc):
                    attempt += 1
                    await self.wait_retry(url, attempt, reason, None)
                    continue
                raise self._transport_error(url, exc, attempt + 1) from exc
            except _http.BadResponse as exc:
                # Bytes that are not HTTP (another protocol on that port): an endpoint that does not
                # answer like a Hub, as an HTML page or invalid JSON is, not an unreachable one.
                target = public_url(self.config.endpoint) if self.is_hub(url) else _origin_str(url)
                raise E.ProtocolError(
                    f"{target} does not answer like a Hub: {exc}", url=strip_query(url)
                ) from exc
            except _http.HttpError as exc:
                raise self._transport_error(url, exc, attempt + 1) from exc
            if read:
                resp.release()
            return resp, url, payload

    def _has_token(self, url: str) -> bool:
        return bool(self.config.token) and self.is_hub(url)

    def _transport_error(self, url: str, exc: BaseException, attempts: int) -> E.TransportError:
        target = public_url(self.config.endpoint) if self.is_hub(url) else _origin_str(url)
        tries = f"{attempts} attempts" if attempts > 1 else "1 attempt"
        if isinstance(exc, TimeoutError):
            return E.TransferTimeoutError(
                f"{target} did not answer in time after {tries}",
                url=strip_query(url),
                attempts=attempts,
            )
        # Retrying would not have helped a permanent failure, so the count says nothing there.
        after = "" if _permanent(exc) else f" (after {tries})"
        return E.ConnectError(
            f"cannot reach {target}: {_short_reason(exc)}{after}",
            url=strip_query(url),
            attempts=attempts,
        )

    async def get_json(
        self,
        path: str,
        *,
        ctx: Ctx = NO_CTX,
        params: Any = None,
        answered_locally: Callable[[], bool] | None = None,
    ) -> Any:
        """GET the JSON at an API `path`: a metadata request (`metadata_timeout_s`)."""
        resp = await self.send(
            "GET",
            self.url(path),
            ctx=ctx,
            params=params,
            answered_locally=answered_locally,
            timeout_s=self.config.metadata_timeout_s,
        )
        return resp.json()

    @asynccontextmanager
    async def stream(
        self,
        url: str,
        *,
        ctx: Ctx = NO_CTX,
        byte_range: tuple[int, int] | None = None,
        auth: bool = True,
    ) -> AsyncIterator[Stream]:
        """GET `url` and yield the open response for streaming (redirects followed, token kept on-Hub).

        Status errors are retried and mapped like `send()`; errors while reading the body surface
        from `Stream.pour()` / `Stream.iter_chunks()` as TransportError for the caller to resume.
        """
        headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range is not None else {}
        resp, url, _ = await self._exchange("GET", url, headers=headers, auth=auth, read=False)
        try:
            if resp.status >= 400:
                body = await _read_or_empty(resp)
                raise map_error(
                    HubResponse(resp.status, resp.headers, body, url),
                    ctx,
                    has_token=self._has_token(url),
                    on_hub=self.is_hub(url),
                )
            try:
                yield Stream(resp, url)
            except BaseException:
                # A body read halfway must not go back to the pool: drop the connection.
                resp.close()
                raise
        finally:
            resp.release()


def _permanent(exc: BaseException) -> bool:
    return isinstance(exc, _http.ConnectFailed) and exc.permanent


def _unopened(exc: BaseException) -> bool:
    """No connection could be opened at all (refused, unknown host, no route, connect timeout):
    nothing answered, unlike a connection that broke or a server that went silent mid-answer."""
    return isinstance(exc, (_http.ConnectFailed, _http.ConnectTimedOut))


async def _read_or_empty(resp: _http.Response) -> bytes:
    """The body of a response that is not the answer wanted (an error, a retry); b"" when it
    breaks off: losing it is no new failure."""
    try:
        return await resp.read()
    except (_http.HttpError, ConnectionError, TimeoutError):
        return b""


async def _drain(resp: _http.Response) -> None:
    """Read a small redirect body, so its connection goes back to the pool instead of closing."""
    length = resp.headers.get("content-length", "")
    if length.isdigit() and int(length) <= 64 << 10:
        await _read_or_empty(resp)


def _host(url: str) -> str:
    """host[:port] of `url` for events, without the user:password@ that netloc would carry."""
    return _origin_str(url).partition("://")[2]


def _url_secrets(url: str) -> tuple[str, ...]:
    """The credential in `url`'s user:password@ part (the password, or a lone user name: a
    token), as written and percent-decoded: messages may quote either form."""
    p = urlsplit(url)
    secret = p.password or p.username
    return (secret, unquote(secret)) if secret else ()


def redirect_target(url: str, location: str) -> str:
    """Where a redirect leads; ProtocolError when nothing can be requested there."""
    try:
        target = urljoin(url, location)
    except ValueError:  # unbalanced brackets around an IPv6 address
        target = ""
    if (problem := url_problem(target)) is not None:
        raise E.ProtocolError(
            f"{strip_query(url)} redirected to an unusable URL ({problem})", url=strip_query(url)
        )
    return target


def _short_reason(exc: BaseException) -> str:
    # Masked before it is cut: a cut could leave a piece of the token too short to recognise.
    text = E.mask(str(exc).strip()) or type(exc).__name__
    return text.splitlines()[0][:120]
