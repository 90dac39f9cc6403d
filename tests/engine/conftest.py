"""Fixtures for the engine's network tests (helpers in tests/engine/netpeers.py)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from engine import _http
from tests.engine.netpeers import Peer, Peers, Reply, self_signed, serve_peer


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    servers: list[asyncio.Server] = []
    started: list[Peer] = []

    async def start(reply: Reply) -> Peer:
        peer = Peer(reply)
        server = await asyncio.start_server(lambda r, w: serve_peer(peer, r, w), "127.0.0.1", 0)
        servers.append(server)
        started.append(peer)
        peer.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return peer

    yield start
    for server in servers:
        server.close()
    for peer in started:
        for writer in peer.writers:
            writer.close()
    await asyncio.sleep(0)  # let the transports finish closing before the loop goes


@pytest.fixture
def tls_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, tuple[Path, Path]]]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    good = self_signed(tmp_path, "good", "DNS:localhost,IP:127.0.0.1")
    other = self_signed(tmp_path, "other", "DNS:elsewhere.invalid")
    named = self_signed(tmp_path, "named", "DNS:localhost")  # valid for the name only, not 127.0.0.1
    monkeypatch.setattr(_http, "_ssl_context", None)  # the trust store is read once per process
    yield {"good": good, "other": other, "named": named}
    _http._ssl_context = None
