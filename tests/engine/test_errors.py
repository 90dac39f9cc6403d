"""Secrets never reach a message: the token a server echoes, credentials in the endpoint URL.

The servers are real: an http.server in a thread (the CLI runs its own event loop) that repeats
the request's Authorization header in `X-Error-Message` and in a JSON `{"error": ...}` body, and
raw peers (tests/engine/netpeers.py) for answers no well-behaved server sends.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cli.errors import ExitCode
from engine import Engine, HubError, ProtocolError, RepoRef, RetryPolicy, load_config
from engine import _errors as E
from engine._hub import HubClient
from tests.conftest import CliResult
from tests.engine.netpeers import Peers

Run = Callable[..., CliResult]
TOKEN = "hf_secret_token_zzz_0123456789abcdefg"
URL_PASSWORD = "hf_pass_in_url_xxxxx"
FAST = RetryPolicy(base_s=0.001, cap_s=0.002)


class _Echo(BaseHTTPRequestHandler):
    """Refuses every request, quoting its Authorization header back (as some proxies and APIs do)."""

    status = 400
    where = "both"  # "header", "body" or "both"
    padding = 0  # characters before the quote: puts the token across the 200-character cut

    def _refuse(self, *, body: bool) -> None:
        quote = "x" * self.padding + f"denied for {self.headers.get('Authorization', 'nobody')}"
        payload = json.dumps({"error": quote}).encode() if self.where != "header" else b"{}"
        self.send_response(self.status)
        if self.where != "body":
            self.send_header("X-Error-Message", quote)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._refuse(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._refuse(body=False)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._refuse(body=True)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[tuple[str, type[_Echo]]]:
    handler = type("Echo", (_Echo,), {})  # per test: the class attributes are its switches
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _commands(tmp_path: Path) -> list[list[str]]:
    folder = tmp_path / "to_push"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{}")
    return [
        ["hf", "info", "model", "acme/x"],
        ["hf", "info", "model", "acme/x", "--json"],
        ["hf", "search", "model", "x"],
        ["hf", "search", "model", "x", "--json"],
        ["hf", "pull", "model", "acme/x", "-o", str(tmp_path / "out"), "--quiet"],
        ["hf", "push", "model", str(folder), "--repo", "acme/x"],
    ]


# -- 1. the token a server repeats --------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 409])
@pytest.mark.parametrize("where", ["header", "body"])
def test_a_token_the_server_echoes_is_masked_in_every_command(
    run_cli: Run, echo: tuple[str, type[_Echo]], tmp_path: Path, status: int, where: str
) -> None:
    url, handler = echo
    handler.status, handler.where = status, where
    for args in _commands(tmp_path):
        r = run_cli("--token", TOKEN, "--endpoint", url, "-v", *args)
        assert r.exit_code != ExitCode.OK, (args, r)
        assert TOKEN[:8] not in r.stdout + r.stderr, (args, r)
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, (args, r)
        # The message keeps what the server said, minus the token.
        assert "denied for Bearer hf_***" in r.stderr, (args, r)


def test_a_token_cut_by_the_message_length_limit_is_masked_too(
    run_cli: Run, echo: tuple[str, type[_Echo]]
) -> None:
    url, handler = echo
    handler.padding = 200 - len("denied for Bearer ") - 20  # 20 characters of the token fit
    r = run_cli("--token", TOKEN, "--endpoint", url, "hf", "info", "model", "acme/x")
    assert r.exit_code == ExitCode.FAILURE and r.stderr.startswith("error: HTTP 400 from "), r
    assert TOKEN[:8] not in r.stderr and "hf_***" in r.stderr, r


@pytest.mark.anyio
async def test_engine_errors_carry_no_token_in_message_or_attributes(echo: tuple[str, type[_Echo]]) -> None:
    url, handler = echo
    handler.status = 403
    async with Engine(load_config({}, endpoint=url, token=TOKEN, retry=FAST)) as engine:
        with pytest.raises(HubError) as info:
            await engine.info(RepoRef.parse("model", "acme/x"))
    err = info.value
    assert TOKEN[:8] not in repr(err.args) and TOKEN[:8] not in str(err)
    assert "forbidden: denied for Bearer hf_***" == str(err)


@pytest.mark.anyio
async def test_a_token_in_garbage_instead_of_http_is_masked(peers: Peers) -> None:
    # The peer answers with the Authorization line as its status line: the parser quotes its
    # first 40 bytes, which hold a piece of the token.
    def reply(head: bytes) -> bytes:
        auth = next(line for line in head.split(b"\r\n") if line.startswith(b"Authorization:"))
        return auth[len("Authorization: ") :] + b"\r\n\r\n"

    peer = await peers(reply)
    async with Engine(load_config({}, endpoint=peer.url, token=TOKEN, retry=FAST)) as engine:
        with pytest.raises(ProtocolError) as info:  # exit 8: not a Hub, as HTML or garbage JSON
            await engine.info(RepoRef.parse("model", "acme/x"))
    assert "does not answer like a Hub: not an HTTP/1.x response" in str(info.value)
    assert TOKEN[:8] not in str(info.value), info.value
    assert TOKEN[:8] not in str(info.value.__cause__), info.value.__cause__  # shown in tracebacks


def test_masking_covers_whole_tokens_and_their_cut_prefixes() -> None:
    with E.masking(TOKEN):
        assert str(E.HubError(f"x {TOKEN} y {TOKEN[:9]}")) == "x hf_*** y hf_***"
        assert E.HubError("m", url=f"http://h/{TOKEN}").url == "http://h/hf_***"
        with E.masking("hunter2x"):
            assert str(E.UsageError("pw hunter2x, and hunter2")) == "pw ***, and hunter2"
        assert str(E.UsageError("pw hunter2x")) == "pw hunter2x"
        # Too short to tell from ordinary words: masking "p" would turn "pytorch" into "***ytorch".
        with E.masking("p", "user"):
            assert str(E.NotFoundError("pytorch_model.bin of user/x", code="EntryNotFound")) == (
                "pytorch_model.bin of user/x"
            )
    # Only while a client holding the token is open: nothing leaks from one run into the next.
    assert str(E.UsageError(TOKEN)) == TOKEN


# -- 2. credentials in the endpoint URL ----------------------------------------------------------


@pytest.mark.anyio
async def test_an_open_client_masks_its_endpoint_password_in_any_error() -> None:
    config = load_config({}, endpoint="http://u:p%40ss-in-url-123@127.0.0.1:9", token=TOKEN)
    async with HubClient(config) as client:
        # As engine/_upload.py builds them: the raw request URL as an attribute.
        err = ProtocolError(f"quoted p@ss-in-url-123 and {TOKEN}", url=client.url("/api/x"))
    assert str(err) == "quoted *** and hf_***" and err.url == "http://u:***@127.0.0.1:9/api/x"
    assert str(ProtocolError("p@ss-in-url-123")) == "p@ss-in-url-123"  # the client is closed


def test_endpoint_credentials_never_appear_in_messages(
    run_cli: Run, echo: tuple[str, type[_Echo]], tmp_path: Path
) -> None:
    port = _closed_port()
    r = run_cli(
        "--endpoint", f"http://u:{URL_PASSWORD}@127.0.0.1:{port}", "-v", "hf", "info", "model", "acme/x"
    )
    assert r.exit_code == ExitCode.UNREACHABLE, r
    assert f"cannot reach http://127.0.0.1:{port}: " in r.stderr
    assert URL_PASSWORD not in r.stderr + r.stdout and "@127.0.0.1" not in r.stderr

    url, _ = echo
    with_creds = url.replace("http://", f"http://u:{URL_PASSWORD}@")
    for args in _commands(tmp_path):
        r = run_cli("--endpoint", with_creds, "-v", *args)
        assert r.exit_code != ExitCode.OK and "error: " in r.stderr, (args, r)
        assert URL_PASSWORD not in r.stdout + r.stderr and "@127.0.0.1" not in r.stderr, (args, r)
    r = run_cli("--endpoint", with_creds, "hf", "info", "model", "acme/x")
    assert f"HTTP 400 from {url}/api/models/acme/x: denied for nobody" in r.stderr, r


def _always(answer: bytes) -> Callable[[bytes], bytes]:
    return lambda head: answer


@pytest.mark.anyio
async def test_a_redirect_to_a_bad_url_is_a_protocol_error_without_its_credentials(peers: Peers) -> None:
    for location in (
        b"http://u:pw-in-location@127.0.0.1:99999/x",
        b"http://[::1/x",
        b"ftp://u:pw-in-location@h/",
    ):
        redirect = b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"
        peer = await peers(_always(redirect))
        async with Engine(load_config({}, endpoint=peer.url, retry=FAST)) as engine:
            with pytest.raises(ProtocolError) as info:
                await engine.info(RepoRef.parse("model", "acme/x"))
        assert "redirect" in str(info.value) and "pw-in-location" not in str(info.value), info.value


# -- 3. an endpoint that is not a usable URL ------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:99999",
        "http://127.0.0.1:abc",
        "http://[::1",
        "http://127.0.0.1:0",
        f"http://u:{URL_PASSWORD}@127.0.0.1:99999",
        f"http://u:{URL_PASSWORD}@[::1",
        f"ftp://u:{URL_PASSWORD}@127.0.0.1",
        f"u:{URL_PASSWORD}@127.0.0.1",
        f"http://u:{URL_PASSWORD}/x@127.0.0.1",
        "http://\u4e2d\u6587.example",
    ],
)
@pytest.mark.parametrize("source", ["option", "env"])
def test_a_bad_endpoint_is_a_one_line_usage_error(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch, endpoint: str, source: str
) -> None:
    if source == "env":
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        r = run_cli("hf", "info", "model", "acme/x")
    else:
        r = run_cli("--endpoint", endpoint, "hf", "info", "model", "acme/x")
    assert r.exit_code == ExitCode.USAGE, r
    assert r.stderr.startswith("error: invalid endpoint") and len(r.stderr.strip().splitlines()) == 1, r
    assert URL_PASSWORD not in r.stderr, r
