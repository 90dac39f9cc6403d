"""Proxies from the environment: CONNECT tunnels for https, absolute-form requests for http.

The proxy is a small asyncio relay on 127.0.0.1 that records what it is asked; origins are the
raw TLS and plain peers of test_http.py and a LocalHub for the engine API.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from engine import ConnectError, Engine, RepoRef, RetryPolicy, _http, _proxy, load_config
from engine.testing.hub import LocalHub
from tests.engine.netpeers import Peers, get, ok, pool, refused, tls_peer

CREDS = ("proxy-user", "s3cret-proxy-pass")


@dataclass
class Relay:
    url: str = ""
    heads: list[bytes] = field(default_factory=list)
    require: str | None = None  # the Proxy-Authorization value it insists on


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.close()


async def _relay(relay: Relay, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    relay.heads.append(head)
    method, target, _ = head.split(b"\r\n")[0].split(b" ", 2)
    if relay.require and f"Proxy-Authorization: {relay.require}".encode() not in head:
        writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
        return
    if method == b"CONNECT":
        host, port = target.decode().rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    else:
        # Absolute form: forward in origin form, without the proxy's own header.
        u = urlsplit(target.decode())
        up_reader, up_writer = await asyncio.open_connection(u.hostname, u.port or 80)
        lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"proxy-authorization:")]
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        lines[0] = b" ".join([method, path.encode(), b"HTTP/1.1"])
        up_writer.write(b"\r\n".join(lines))
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    r = Relay()
    server = await asyncio.start_server(lambda rd, wr: _relay(r, rd, wr), "127.0.0.1", 0)
    r.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield r
    server.close()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def with_creds(url: str) -> str:
    return url.replace("http://", f"http://{CREDS[0]}:{CREDS[1]}@")


@pytest.mark.anyio
async def test_https_goes_through_a_connect_tunnel_with_proxy_credentials(
    relay: Relay, tls_files: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The origin's certificate names "localhost" only and the proxy listens on 127.0.0.1: the
    # handshake must check the origin's name, not the proxy's address.
    cert, key = tls_files["named"]
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    body = os.urandom(3 * _http.BUFFER_BYTES)
    server, url = await tls_peer(cert, key, body)
    url = url.replace("127.0.0.1", "localhost")
    relay.require = basic(*CREDS)
    monkeypatch.setenv("HTTPS_PROXY", with_creds(relay.url))
    p = pool()
    for _ in range(2):  # the tunnel is kept alive like any connection
        resp = await p.request("GET", url, headers={"Authorization": "Bearer hf_token_for_the_origin_only"})
        assert (resp.status, await resp.read()) == (200, body)
        resp.release()
    await p.aclose()
    server.close()
    assert len(relay.heads) == 1
    connect = relay.heads[0]
    assert connect.startswith(f"CONNECT localhost:{urlsplit(url).port} HTTP/1.1\r\n".encode())
    assert b"hf_token" not in connect and b"Authorization: Bearer" not in connect


@pytest.mark.anyio
async def test_a_tunnel_to_a_certificate_for_the_proxy_only_is_refused(
    relay: Relay, tls_files: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tls_files["other"]  # names elsewhere.invalid, neither the origin nor the proxy
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    server, url = await tls_peer(cert, key, b"x")
    monkeypatch.setenv("HTTPS_PROXY", relay.url)
    await refused(url, "TLS certificate not accepted")
    server.close()


@pytest.mark.anyio
async def test_a_tunnel_the_proxy_cannot_open_is_an_error(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", relay.url)
    p = pool()
    # Nothing listens on port 9 of 127.0.0.1: the relay answers 502.
    with pytest.raises(
        _http.ConnectFailed, match=r"refused the tunnel to 127\.0\.0\.1:9 \(HTTP 502\)"
    ) as info:
        await p.request("GET", "https://127.0.0.1:9/")
    assert not info.value.permanent  # a gateway error may pass: the Hub client retries it
    await p.aclose()


@pytest.mark.anyio
async def test_http_goes_in_absolute_form_and_no_proxy_bypasses(
    relay: Relay, peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bytes] = []

    def reply(head: bytes) -> bytes:
        seen.append(head)
        return ok(b"via")

    origin = await peers(reply)
    relay.require = basic(*CREDS)
    monkeypatch.setenv("http_proxy", with_creds(relay.url))
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # lower case wins, as in curl
    p = pool()
    assert await get(p, origin.url + "/x?y=1") == (200, b"via")
    await p.aclose()
    assert relay.heads[0].startswith(f"GET {origin.url}/x?y=1 HTTP/1.1\r\n".encode())
    assert f"Proxy-Authorization: {basic(*CREDS)}".encode() in relay.heads[0]
    monkeypatch.setenv("NO_PROXY", "example.org, 127.0.0.0/8")
    p = pool()
    assert await get(p, origin.url) == (200, b"via")
    await p.aclose()
    assert len(relay.heads) == 1  # the second request went direct
    assert len(seen) == 2 and b"Proxy-Authorization" not in seen[1]


@pytest.mark.anyio
async def test_a_407_on_plain_http_is_a_proxy_error(
    relay: Relay, peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = await peers(lambda head: ok(b"never"))
    relay.require = basic("someone", "else")
    monkeypatch.setenv("HTTP_PROXY", with_creds(relay.url))
    assert (await refused(origin.url, "refused the request")).permanent and origin.connections == 0


@pytest.mark.parametrize(
    "setting",
    [
        "http://alice:hunter2\uff03x@proxy.invalid:3128",  # a character the URL parser rejects
        "http://alice:12345/6789@127.0.0.1:3128",  # an unencoded "/" ends the host part early
        "http://alice:pa[ss@proxy.invalid:3128",
    ],
)
def test_a_malformed_proxy_setting_is_refused_without_repeating_it(setting: str) -> None:
    with pytest.raises(_http.ConnectFailed) as info:
        _proxy.proxy_for("https", "huggingface.co", 443, {"HTTPS_PROXY": setting})
    assert info.value.permanent
    for secret in ("alice", "hunter2", "12345", "6789", "pa[ss"):
        assert secret not in str(info.value)


@pytest.mark.anyio
async def test_a_refusing_proxy_is_a_clear_error_without_its_password(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay.require = basic("someone", "else")
    monkeypatch.setenv("HTTPS_PROXY", with_creds(relay.url))
    config = load_config(
        {}, endpoint="https://hub.example.invalid", retry=RetryPolicy(base_s=0.01, cap_s=0.02)
    )
    async with Engine(config) as engine:
        with pytest.raises(ConnectError) as info:
            await engine.info(RepoRef.parse("model", "acme/tiny"))
    assert "refused the tunnel to hub.example.invalid:443 (HTTP 407)" in str(info.value)
    assert CREDS[1] not in str(info.value) and CREDS[0] not in str(info.value)
    assert len(relay.heads) == 1  # 407 is not retried


@pytest.mark.anyio
async def test_the_engine_reaches_a_hub_through_the_proxy(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LocalHub.in_thread() as hub:
        hub.add_repo("acme/tiny", {"config.json": b"{}"})
        monkeypatch.setenv("HTTP_PROXY", relay.url)
        async with Engine(load_config(os.environ, endpoint=hub.url)) as engine:
            info = await engine.info(RepoRef.parse("model", "acme/tiny"))
    assert info.info.id == "acme/tiny"
    assert any(h.startswith(f"GET {hub.url}/api/models/acme/tiny".encode()) for h in relay.heads)


@pytest.mark.parametrize(
    ("host", "no_proxy", "expected"),
    [
        ("huggingface.co", "", False),
        ("huggingface.co", "*", True),
        ("cdn-lfs.huggingface.co", ".huggingface.co", True),
        ("cdn-lfs.huggingface.co", "huggingface.co", True),
        ("nothuggingface.co", "huggingface.co", False),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("11.1.2.3", "10.0.0.0/8", False),
        ("mirror.local", "other, mirror.local:443", True),
        ("mirror.local", "mirror.local:8080", False),
        ("[::1]", "::1/128", True),
        ("[::1]", "[::1]:443", True),
        ("10.0.0.1", "0.0.1", False),  # suffixes are for names, not addresses
        ("huggingface.co.", "huggingface.co", True),
        ("huggingface.co", "example.org, *", False),  # "*" counts only alone, as in curl
    ],
)
def test_no_proxy_rules(host: str, no_proxy: str, expected: bool) -> None:
    assert _proxy.bypassed(host, 443, no_proxy) is expected


def test_proxy_urls() -> None:
    env = {"https_proxy": "proxy.corp:3128", "all_proxy": "http://u:p%40ss@fallback:8080"}
    assert _proxy.proxy_for("https", "huggingface.co", 443, env) == _proxy.Proxy(
        "proxy.corp", 3128, None, "http://proxy.corp:3128"
    )
    via_all = _proxy.proxy_for("http", "huggingface.co", 80, env)
    assert via_all is not None and via_all.auth == basic("u", "p@ss")
    assert "p@ss" not in via_all.label and "cEBzcw" not in repr(via_all)
    assert _proxy.proxy_for("https", "huggingface.co", 443, {}) is None
    with pytest.raises(_http.ConnectFailed, match="unsupported socks5:// proxy"):
        _proxy.proxy_for("https", "huggingface.co", 443, {"HTTPS_PROXY": "socks5://127.0.0.1:1080"})


@pytest.mark.parametrize(
    ("url", "shown", "origin"),
    [
        (
            "http://u:pw@127.0.0.1:8080/api/x?sig=abc#f",
            "http://127.0.0.1:8080/api/x",
            "http://127.0.0.1:8080",
        ),
        ("https://u@Hub.Example:443/p", "https://hub.example/p", "https://hub.example"),
        ("http://u:pw@[::1]:99999/x", "http://[::1]:99999/x", "http://[::1]:99999"),  # as written
        ("http://u:pw@[::1", "(malformed URL)", "(malformed URL)"),
        ("u:pw@127.0.0.1", "(URL without a host)", "(URL without a host)"),
    ],
)
def test_urls_in_messages_are_rebuilt_without_credentials(url: str, shown: str, origin: str) -> None:
    assert _proxy.public_url(url) == shown
    assert _proxy.public_url(url, path=False) == origin
