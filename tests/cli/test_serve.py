"""`batuta hf serve` argument checks (the server itself is covered by tests/server)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.errors import ExitCode
from tests.conftest import CliResult

Run = Callable[..., CliResult]


@pytest.mark.parametrize(
    ("option", "value"), [("--port", "70000"), ("--port", "-1"), ("--blob-port", "65536")]
)
def test_port_out_of_range_is_a_usage_error(run_cli: Run, tmp_path: Path, option: str, value: str) -> None:
    r = run_cli("hf", "serve", "--root", str(tmp_path), option, value)
    assert r.exit_code == ExitCode.USAGE and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [
        f"error: Invalid value for '{option}': {value} is not in the range 0<=x<=65535."
    ]


def test_root_that_is_not_a_folder_is_a_usage_error(run_cli: Run, tmp_path: Path) -> None:
    r = run_cli("hf", "serve", "--root", str(tmp_path / "nope"), "--port", "65535")
    assert r.exit_code == ExitCode.USAGE and r.stderr.splitlines() == [
        f"error: --root '{tmp_path / 'nope'}' is not a folder"
    ]


def test_a_taken_blob_port_is_named(run_cli: Run, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        r = run_cli("hf", "serve", "--root", str(tmp_path), "--blob-port", str(port))
    assert r.exit_code == ExitCode.FAILURE
    assert r.stderr.splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]


@pytest.mark.parametrize(
    ("name", "text"), [("tokens.json", '{"hf_x": {"user": "a",}'), ("aliases.json", "[1]")]
)
def test_a_malformed_operator_file_stops_the_server_before_it_serves(
    run_cli: Run, tmp_path: Path, name: str, text: str
) -> None:
    (tmp_path / name).write_text(text)
    r = run_cli("hf", "serve", "--root", str(tmp_path), "--port", "0")
    assert r.exit_code == ExitCode.USAGE and len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith(f"error: {name} ")
