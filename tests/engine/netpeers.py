"""Network peers for the HTTP tests: scripted raw-socket servers and TLS with test certificates.

The fixtures that use these live in tests/engine/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine import _http

Reply = Callable[[bytes], bytes | None]  # request head -> raw response (None: close the connection)


@dataclass
class Peer:
    reply: Reply
    url: str = ""
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    close_after_each: bool = False
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


async def serve_peer(peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer.connections += 1
    peer.writers.append(writer)
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":")[1]))
            peer.requests.append(head)
            answer = peer.reply(head)
            if answer is None:
                return
            writer.write(answer)
            await writer.drain()
            if peer.close_after_each:
                return
    finally:
        writer.close()


Peers = Callable[[Reply], Awaitable[Peer]]


def pool(**kw: float) -> _http.Pool:
    args: dict[str, float] = {"limit": 4, "connect_timeout_s": 2.0, "stall_s": 2.0} | kw
    return _http.Pool(
        limit=int(args["limit"]),
        connect_timeout_s=args["connect_timeout_s"],
        stall_s=args["stall_s"],
        user_agent="batuta-test",
    )


def ok(body: bytes, *extra: str) -> bytes:
    head = "\r\n".join(["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra])
    return head.encode() + b"\r\n\r\n" + body


async def refused(url: str, match: str) -> _http.ConnectFailed:
    """The ConnectFailed a fresh pool raises for a GET of `url` (pytest.raises-checked)."""
    p = pool()
    try:
        with pytest.raises(_http.ConnectFailed, match=match) as info:
            await p.request("GET", url)
    finally:
        await p.aclose()
    return info.value


async def get(p: _http.Pool, url: str, method: str = "GET") -> tuple[int, bytes]:
    resp = await p.request(method, url)
    try:
        return resp.status, await resp.read()
    finally:
        resp.release()


def self_signed(tmp: Path, name: str, san: str) -> tuple[Path, Path]:
    cert, key = tmp / f"{name}.pem", tmp / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + [
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=batuta-test",
            "-addext",
            f"subjectAltName={san}",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def tls_peer(cert: Path, key: Path, body: bytes) -> tuple[asyncio.Server, str]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(ok(body))
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ctx)
    return server, f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
