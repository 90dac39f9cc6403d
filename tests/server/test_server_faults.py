"""The blob listener (signed URLs, no Authorization) and every fault switch, plus the counters."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import pytest

from engine.server import HubServer, ServerConfig
from engine.testing import LocalHub
from engine.testing.http import fetch

BLOB = os.urandom(3 * 1024 * 1024 + 17)
TEXT = b"0123456789" * 1000


@pytest.fixture
def blob_url(hub: LocalHub) -> str:
    hub.add_repo("acme/tiny", {"model.safetensors": BLOB, "notes.txt": TEXT})
    location = fetch("HEAD", f"{hub.url}/acme/tiny/resolve/main/model.safetensors").header("location")
    assert location is not None
    hub.reset()
    return location


def test_blob_route_refuses_authorization_and_bad_signatures(hub: LocalHub, blob_url: str) -> None:
    with_auth = fetch("GET", blob_url, token="hf_write_alice")
    assert with_auth.status == 400 and b"Only one auth mechanism" in with_auth.body
    assert hub.stats().blob_requests_with_auth == 1
    tampered = fetch("GET", blob_url.replace("exp=", "exp=1"))
    assert tampered.status == 403 and tampered.header("content-type") is not None
    assert "x-error-code" not in tampered.headers  # a CDN, not the Hub
    unsigned = fetch("GET", blob_url.split("?")[0])
    assert unsigned.status == 403
    hub.expire_signatures(times=1)
    expired = fetch("GET", blob_url)
    assert expired.status == 403 and b"expired" in expired.body
    assert fetch("GET", blob_url).body == BLOB
    assert hub.stats().faults_fired == {"expired": 1}


def test_signed_urls_really_expire(tmp_path: Path) -> None:
    with LocalHub.in_thread(tmp_path, signed_url_ttl_s=-1) as hub:
        hub.add_repo("acme/tiny", {"w.bin": b"\x00" * 10})
        location = fetch("HEAD", f"{hub.url}/acme/tiny/resolve/main/w.bin").header("location") or ""
        reply = fetch("GET", location)
        assert reply.status == 403 and b"expired" in reply.body


def test_many_concurrent_ranges(hub: LocalHub, blob_url: str) -> None:
    step = 256 * 1024
    starts = list(range(0, len(BLOB), step))

    def get(start: int) -> bytes:
        reply = fetch("GET", blob_url, headers={"Range": f"bytes={start}-{start + step - 1}"})
        assert reply.status == 206
        return reply.body

    with ThreadPoolExecutor(8) as pool:
        assert b"".join(pool.map(get, starts)) == BLOB
    stats = hub.stats()
    assert stats.blob_bytes_sent == len(BLOB) and stats.count("blob", "GET") == len(starts)
    assert [r.range for r in stats.requests if r.kind == "blob"].count(f"bytes=0-{step - 1}") == 1


def test_fail_answers_status_with_retry_after_then_recovers(hub: LocalHub, blob_url: str) -> None:
    hub.fail(status=429, times=2, path_contains="notes.txt", retry_after="7")
    url = f"{hub.url}/acme/tiny/resolve/main/notes.txt"
    assert fetch("GET", f"{hub.url}/api/models/acme/tiny").status == 200  # not matched
    first = fetch("GET", url)
    assert (first.status, first.header("retry-after")) == (429, "7")
    assert fetch("GET", url).status == 429
    assert fetch("GET", url).body == TEXT
    hub.fail(status=503, times=1, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    down = fetch("GET", blob_url)  # no filter: the next request whatever it is, blob route included
    assert (down.status, down.header("retry-after")) == (503, "Wed, 21 Oct 2015 07:28:00 GMT")
    for status in (500, 502, 504):
        hub.fail(status=status, times=1)
        assert fetch("GET", url).status == status
    assert hub.stats().faults_fired == {"429": 2, "503": 1, "500": 1, "502": 1, "504": 1}


def test_truncate_once_cuts_the_connection(hub: LocalHub, blob_url: str) -> None:
    hub.truncate_once(after_bytes=1000, path_contains="/blobs/")
    cut = fetch("GET", blob_url)
    assert not cut.complete and cut.body == BLOB[:1000]
    assert fetch("GET", blob_url).body == BLOB  # once only
    hub.truncate_once(after_bytes=10, path_contains="notes.txt")
    cut = fetch("GET", f"{hub.url}/acme/tiny/resolve/main/notes.txt", headers={"Range": "bytes=100-"})
    assert cut.status == 206 and not cut.complete and cut.body == TEXT[100:110]
    assert hub.stats().faults_fired == {"truncate": 2}


def test_flip_byte_once(hub: LocalHub, blob_url: str) -> None:
    hub.flip_byte_once(offset=5)
    bad = fetch("GET", blob_url, headers={"Range": "bytes=100-199"})
    assert bad.complete and len(bad.body) == 100
    assert bad.body[:5] == BLOB[100:105] and bad.body[5] != BLOB[105] and bad.body[6:] == BLOB[106:200]
    assert fetch("GET", blob_url).body == BLOB


def test_stall_once_then_completes(hub: LocalHub, blob_url: str) -> None:
    hub.stall_once(after_bytes=4096, seconds=0.3, path_contains="/blobs/")
    reply = fetch("GET", blob_url)
    assert reply.complete and reply.body == BLOB
    assert hub.stats().faults_fired == {"stall": 1}


def test_stall_trips_a_client_timeout(hub: LocalHub, blob_url: str) -> None:
    hub.stall_once(after_bytes=4096, seconds=2.0)
    with pytest.raises(TimeoutError):
        fetch("GET", blob_url, timeout_s=0.3)


def test_throttles_keep_bytes_intact(hub: LocalHub, blob_url: str) -> None:
    hub.throttle(per_conn_bytes_s=64 * 1024 * 1024, latency_s=0.05, aggregate_bytes_s=128 * 1024 * 1024)
    with ThreadPoolExecutor(3) as pool:
        bodies = list(pool.map(lambda _: fetch("GET", blob_url).body, range(3)))
    assert bodies == [BLOB] * 3
    hub.reset()
    assert hub.stats().total == 0


def test_paced_body_flips_one_byte_between_zero_copy_chunks(hub: LocalHub, blob_url: str) -> None:
    # 64 MiB/s paces in ~3 MiB/20 chunks: the flipped byte sits in a middle chunk, read into
    # memory, while the chunks around it go out with sendfile.
    hub.throttle(per_conn_bytes_s=64 * 1024 * 1024)
    hub.flip_byte_once(offset=2_000_000)
    reply = fetch("GET", blob_url, headers={"Range": "bytes=17-"})
    body, want = reply.body, BLOB[17:]
    assert reply.complete and len(body) == len(want)
    assert body[2_000_000] == want[2_000_000] ^ 0xFF
    assert body[:2_000_000] == want[:2_000_000] and body[2_000_001:] == want[2_000_001:]
    hub.truncate_once(after_bytes=1_500_000)
    cut = fetch("GET", blob_url)
    assert not cut.complete and cut.body == BLOB[: len(cut.body)] and len(cut.body) == 1_500_000


def test_a_client_leaving_a_paced_body_is_not_a_server_error(
    hub: LocalHub, blob_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    hub.throttle(per_conn_bytes_s=2 * 1024 * 1024)
    url = urlsplit(blob_url)
    for _ in range(3):
        with socket.create_connection((url.hostname, url.port)) as sock:
            sock.sendall(f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
            assert sock.recv(65536)  # headers and the first paced chunk, then hang up mid-body
    deadline = time.monotonic() + 5
    while hub.stats().blob_bytes_sent < 3 * 100_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the next paced chunk would go out now, to a closed connection
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert fetch("GET", blob_url).body == BLOB  # and the server still serves


def test_admin_routes_drive_the_same_switches(hub: LocalHub, blob_url: str) -> None:
    admin = f"{hub.url}/_batuta"
    body = json.dumps({"fail": {"status": 502, "times": 1, "path_contains": "/api/"}})
    assert fetch("POST", f"{admin}/faults", body=body).status == 200
    assert fetch("GET", f"{hub.url}/api/models").status == 502
    stats = cast(dict[str, Any], fetch("GET", f"{admin}/stats").json())
    assert stats["faults_fired"] == {"502": 1} and stats["by_route"]["GET list"] == 1
    assert fetch("POST", f"{admin}/reset").status == 200
    assert hub.stats().total == 0


@pytest.mark.anyio
async def test_admin_routes_are_off_outside_testing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATUTA_SERVE_TESTING", raising=False)
    async with HubServer(ServerConfig(root=tmp_path)) as server, aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/_batuta/stats") as resp:
            assert resp.status == 404
        async with http.post(
            f"{server.url}/_batuta/faults", json={"fail": {"status": 500, "times": 1}}
        ) as resp:
            assert resp.status == 404
        async with http.get(f"{server.url}/api/models") as resp:
            assert resp.status == 200 and resp.headers["X-Request-Id"]
