"""engine/_http.py over real sockets: framing, keep-alive, stale connections, stalls, the pool.

The peer is a raw asyncio TCP server that answers each request with scripted bytes, so framing
cases the Hub server never produces (chunk extensions, trailers, HTTP/1.0, garbage) are covered.
"""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

import pytest

from engine import ConnectError, RetryPolicy, _http, load_config
from engine._hub import HubClient
from tests.engine.netpeers import Peers, get, ok, pool, refused, tls_peer


@pytest.mark.anyio
async def test_content_length_bodies_reuse_one_connection(peers: Peers) -> None:
    peer = await peers(lambda head: ok(b"hello " + head.split()[1]))
    p = pool()
    assert await get(p, peer.url + "/a") == (200, b"hello /a")
    assert await get(p, peer.url + "/b") == (200, b"hello /b")
    await p.aclose()
    assert peer.connections == 1
    assert peer.requests[0].startswith(b"GET /a HTTP/1.1\r\nHost: 127.0.0.1:")


@pytest.mark.anyio
async def test_chunked_body_with_extensions_and_trailers(peers: Peers) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    peer = await peers(lambda head: chunked)
    p = pool()
    assert await get(p, peer.url) == (200, b"hello world!")
    assert await get(p, peer.url) == (200, b"hello world!")
    await p.aclose()
    assert peer.connections == 1  # the chunked body was read to its end, so the connection was kept


@pytest.mark.anyio
async def test_body_until_close_and_connection_close_are_not_reused(
    peers: Peers,
) -> None:
    peer = await peers(lambda head: b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
    peer.close_after_each = True
    p = pool()
    assert await get(p, peer.url) == (200, b"until the end")
    assert await get(p, peer.url) == (200, b"until the end")
    assert peer.connections == 2
    closing = await peers(lambda head: ok(b"x", "Connection: close"))
    assert await get(p, closing.url) == (200, b"x")
    assert await get(p, closing.url) == (200, b"x")
    await p.aclose()
    assert closing.connections == 2


@pytest.mark.anyio
async def test_a_keep_alive_connection_closed_by_the_server_is_replaced(
    peers: Peers,
) -> None:
    # The server answers, then drops the connection without saying so: the next request on the
    # pooled connection fails before any response byte and must go out again on a new one.
    peer = await peers(lambda head: ok(b"fine"))
    peer.close_after_each = True
    p = pool()
    assert await get(p, peer.url) == (200, b"fine")
    await asyncio.sleep(0.05)
    assert await get(p, peer.url) == (200, b"fine")
    await p.aclose()
    assert peer.connections == 2


@pytest.mark.anyio
async def test_truncated_body_raises_connection_broken(peers: Peers) -> None:
    peer = await peers(lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
    peer.close_after_each = True
    p = pool()
    resp = await p.request("GET", peer.url)
    with pytest.raises(_http.ConnectionBroken):
        await resp.read()
    resp.release()
    await p.aclose()


@pytest.mark.anyio
async def test_a_silent_server_is_a_stall(peers: Peers) -> None:
    peer = await peers(lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    p = pool(stall_s=0.3)
    resp = await p.request("GET", peer.url)
    with pytest.raises(TimeoutError):
        await resp.read()
    resp.release()
    await p.aclose()


@pytest.mark.anyio
async def test_garbage_and_interim_responses(peers: Peers) -> None:
    garbage = await peers(lambda head: b"\x00\x01 not http at all\r\n\r\n")
    p = pool()
    with pytest.raises(_http.BadResponse):
        await p.request("GET", garbage.url)
    interim = await peers(lambda head: b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"real"))
    assert await get(p, interim.url) == (200, b"real")
    await p.aclose()


@pytest.mark.anyio
async def test_head_has_no_body_even_with_a_length(peers: Peers) -> None:
    peer = await peers(lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    p = pool()
    assert await get(p, peer.url, "HEAD") == (200, b"")
    assert await get(p, peer.url, "HEAD") == (200, b"")
    await p.aclose()
    assert peer.connections == 1


@pytest.mark.anyio
async def test_pour_delivers_every_byte_in_order_and_paces(peers: Peers) -> None:
    body = random.Random(3).randbytes(3 * _http.BUFFER_BYTES + 12345)
    peer = await peers(lambda head: ok(body))
    p = pool()
    for _ in range(2):
        got = bytearray()
        paced: list[int] = []

        def pace(n: int, paced: list[int] = paced) -> float:
            paced.append(n)
            return 0.001

        resp = await p.request("GET", peer.url)
        await resp.pour(got.extend, pace)
        resp.release()
        assert bytes(got) == body
        assert sum(paced) == len(body)
    await p.aclose()
    assert peer.connections == 1


@pytest.mark.anyio
async def test_a_failing_sink_surfaces_and_the_connection_is_dropped(
    peers: Peers,
) -> None:
    body = bytes(2 * _http.BUFFER_BYTES)
    peer = await peers(lambda head: ok(body))
    p = pool()
    seen = 0

    def sink(view: memoryview) -> None:
        nonlocal seen
        seen += len(view)
        if seen > _http.BUFFER_BYTES // 2:
            raise OSError(28, "No space left on device")

    resp = await p.request("GET", peer.url)
    with pytest.raises(OSError, match="No space"):
        await resp.pour(sink)
    resp.release()
    assert await get(p, peer.url) == (200, body)
    await p.aclose()
    assert peer.connections == 2


@pytest.mark.anyio
async def test_pool_limit_frees_an_idle_connection_for_another_host(
    peers: Peers,
) -> None:
    a = await peers(lambda head: ok(b"a"))
    b = await peers(lambda head: ok(b"b"))
    p = pool(limit=1)
    assert await get(p, a.url) == (200, b"a")  # leaves an idle connection holding the only slot
    held = await p.request("GET", a.url)
    waiting = asyncio.ensure_future(get(p, b.url))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the slot is in use: b waits
    assert await held.read() == b"a"
    held.release()
    assert await asyncio.wait_for(waiting, 2) == (200, b"b")
    await p.aclose()


def test_request_target_quotes_and_appends_params() -> None:
    assert _http.request_target("https://hf.co/a b/é?x=1", [("q", "a b")]) == (
        "https",
        "hf.co",
        443,
        "/a%20b/%C3%A9?x=1&q=a+b",
    )
    assert _http.request_target("http://h:8080/%20ok", None) == ("http", "h", 8080, "/%20ok")
    with pytest.raises(_http.BadResponse):
        _http.request_target("ftp://h/x", None)


def test_header_injection_is_refused() -> None:
    async def go() -> None:
        p = pool()
        with pytest.raises(ValueError, match="line break"):
            await p.request("GET", "http://127.0.0.1:9/", headers={"X": "a\r\nEvil: 1"})

    asyncio.run(go())


@pytest.mark.anyio
async def test_a_body_crossing_the_buffer_end_is_read_without_waiting_for_the_watchdog(
    peers: Peers,
) -> None:
    # A big head and a first packet with only a few body bytes: the rest must be compacted into
    # place and read at once, not after the stall timeout (60 s here, so a hang fails the test).
    body = random.Random(5).randbytes(2 * _http.BUFFER_BYTES)
    padding = "X-Pad: " + "p" * 400

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(ok(body, padding)[: 500 + 100])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(ok(body, padding)[600:])
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    p = pool(stall_s=60)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    assert await asyncio.wait_for(get(p, url), 10) == (200, body)
    chunk = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    chunked = await peers(lambda head: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk)
    assert await asyncio.wait_for(get(p, chunked.url), 10) == (200, body)
    await p.aclose()
    server.close()


@pytest.mark.anyio
@pytest.mark.parametrize("size_line", [b"-6", b"0x5", b"1_0", b"+5", b"zz"])
async def test_only_hex_chunk_sizes_are_accepted(peers: Peers, size_line: bytes) -> None:
    peer = await peers(
        lambda head: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size_line + b"\r\n"
    )
    p = pool()
    with pytest.raises(_http.BadResponse, match="chunk size"):
        await asyncio.wait_for(get(p, peer.url), 10)
    await p.aclose()


@pytest.mark.anyio
async def test_conflicting_content_lengths_are_refused(peers: Peers) -> None:
    peer = await peers(
        lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 12\r\n\r\nhello"
    )
    p = pool()
    with pytest.raises(_http.BadResponse, match="Content-Length"):
        await p.request("GET", peer.url)
    await p.aclose()


@pytest.mark.anyio
async def test_bytes_arriving_on_an_idle_connection_retire_it(peers: Peers) -> None:
    sent: list[int] = []

    def reply(head: bytes) -> bytes:
        sent.append(1)
        # The first answer carries stray bytes past its framed body (a broken server or proxy).
        return ok(b"one") + (
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nstale" if len(sent) == 1 else b""
        )

    peer = await peers(reply)
    p = pool()
    assert await get(p, peer.url) == (200, b"one")
    await asyncio.sleep(0.05)
    assert await get(p, peer.url) == (200, b"one")  # not the stale 404
    await p.aclose()
    assert peer.connections == 2


@pytest.mark.anyio
async def test_an_answer_sent_before_the_upload_ends_is_reported(peers: Peers) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    p = pool()
    resp = await p.request("PUT", url, body=bytes(32 << 20))
    assert (resp.status, await resp.read()) == (413, b"too big!")
    resp.release()
    await p.aclose()
    server.close()


@pytest.mark.anyio
async def test_a_freed_connection_goes_to_the_next_request_for_its_host(peers: Peers) -> None:
    peer = await peers(lambda head: ok(b"x" * 100))
    p = pool(limit=1)
    results = await asyncio.gather(*(get(p, peer.url) for _ in range(6)))
    await p.aclose()
    assert results == [(200, b"x" * 100)] * 6
    assert peer.connections == 1


@pytest.mark.anyio
async def test_https_bodies_arrive_whole_through_tls(
    tls_files: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tls_files["good"]
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    body = random.Random(8).randbytes(3 * _http.BUFFER_BYTES + 999)
    server, url = await tls_peer(cert, key, body)
    p = pool()
    assert await get(p, url) == (200, body)
    got = bytearray()
    resp = await p.request("GET", url)
    await resp.pour(got.extend)
    resp.release()
    assert bytes(got) == body
    await p.aclose()
    server.close()


@pytest.mark.anyio
async def test_https_refuses_an_untrusted_or_mismatched_certificate(
    tls_files: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, other = tls_files["good"], tls_files["other"]
    server, url = await tls_peer(*good, b"secret")
    monkeypatch.setenv("SSL_CERT_FILE", str(other[0]))  # trusts another certificate only
    assert (await refused(url, "TLS certificate not accepted")).permanent
    server.close()
    # Trusted, but issued for another name than the one connected to.
    server, url = await tls_peer(*other, b"secret")
    _http._ssl_context = None
    await refused(url, "mismatch")
    server.close()


@pytest.mark.anyio
async def test_the_hub_client_does_not_retry_a_certificate_it_cannot_trust(
    tls_files: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = await tls_peer(*tls_files["good"], b"{}")
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files["other"][0]))
    config = load_config({}, endpoint=url, retry=RetryPolicy(base_s=0.01, cap_s=0.02), token="hf_" + "x" * 34)
    async with HubClient(config) as client:
        with pytest.raises(ConnectError, match="TLS certificate not accepted") as info:
            await client.get_json("/api/models")
        assert client.retries == 0
    assert "hf_xxx" not in str(info.value)
    server.close()


@pytest.mark.anyio
async def test_the_hub_client_does_not_retry_a_host_name_that_does_not_exist() -> None:
    host = "no-such-hub.invalid"  # RFC 2606: never resolves
    try:
        socket.getaddrinfo(host, 80)
    except socket.gaierror as exc:
        if exc.errno != socket.EAI_NONAME:
            pytest.skip(f"this resolver does not give a definite answer: {exc}")
    else:
        pytest.skip(f"this resolver answers for {host}")
    config = load_config({}, endpoint=f"http://{host}", retry=RetryPolicy(base_s=0.01, cap_s=0.02))
    async with HubClient(config) as client:
        with pytest.raises(ConnectError, match=f"cannot reach http://{host}") as info:
            await client.get_json("/api/models")
        assert client.retries == 0
    assert "attempts" not in str(info.value)


@pytest.mark.anyio
async def test_a_freed_slot_goes_to_the_first_in_line_not_to_a_newcomer(peers: Peers) -> None:
    a = await peers(lambda head: ok(b"a"))
    b = await peers(lambda head: ok(b"b"))
    p = pool(limit=1)
    finished: list[str] = []

    async def waiter() -> None:
        assert await get(p, b.url) == (200, b"b")
        finished.append("waiter")

    held = await p.request("GET", a.url)
    task = asyncio.ensure_future(waiter())
    await asyncio.sleep(0.05)  # the waiter is queued for the only slot
    assert await held.read() == b"a"
    held.release()  # frees the slot for the waiter, which has not run yet...
    assert await get(p, a.url) == (200, b"a")  # ...so this newcomer must queue behind it
    finished.append("newcomer")
    await task
    await p.aclose()
    assert finished == ["waiter", "newcomer"]
