"""The --json failure contract: one JSON document on stdout, one error line on stderr, same exit code."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli.errors import ExitCode
from engine.testing.hub import LocalHub
from tests.conftest import CliResult

Run = Callable[..., CliResult]
READER = "hf_cli_reader_token_json_000000000000"


@pytest.fixture(scope="module")
def hub() -> Iterator[LocalHub]:
    with LocalHub.in_thread() as h:
        h.add_token(READER, user="acme", role="read")
        h.add_repo("acme/tiny", {"config.json": b"{}", "model.safetensors": b"w" * 64})
        h.add_repo("acme/gated-llama", {"config.json": b"{}", "model.safetensors": b"w" * 64}, gated=True)
        yield h


def failed(r: CliResult, code: ExitCode) -> dict[str, object]:
    """Assert the contract and return the document (json.loads refuses two concatenated ones)."""
    assert r.exit_code == code, r
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r
    doc = json.loads(r.stdout)
    assert isinstance(doc, dict)
    return doc


def error_document(r: CliResult, code: ExitCode) -> None:
    doc = failed(r, code)
    assert doc == {"error": {"message": r.stderr.strip().removeprefix("error: "), "exit_code": int(code)}}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["info", "model", "acme/nope"], ExitCode.AUTH_REQUIRED),  # anonymous: the Hub's 401
        (["info", "model", "acme/tiny", "--revision", "v9"], ExitCode.NOT_FOUND),
        (["info", "model", "a/b/c"], ExitCode.USAGE),
        (["info", "checkpoint", "acme/tiny"], ExitCode.USAGE),
        (["search", "model", "x", "--limit", "0"], ExitCode.USAGE),
        (["search", "space", "x", "--task", "y"], ExitCode.USAGE),
        (["pull", "model", "acme/gated-llama"], ExitCode.GATED),
        (["pull", "model", "acme/nope"], ExitCode.AUTH_REQUIRED),
        (["pull", "model", "acme/tiny", "--max-rate", "fast"], ExitCode.USAGE),
        (["pull", "model", "acme/tiny", "--max-connections", "0"], ExitCode.USAGE),
        (["pull", "model", "acme/tiny", "--quantization", "Q3_K_S"], ExitCode.USAGE),
    ],
)
def test_failing_commands_write_an_error_document(
    run_cli: Run, hub: LocalHub, args: list[str], code: ExitCode
) -> None:
    error_document(run_cli("--endpoint", hub.url, "hf", *args, "--json"), code)


def test_without_json_a_failure_writes_nothing_on_stdout(run_cli: Run, hub: LocalHub) -> None:
    r = run_cli("--endpoint", hub.url, "--token", READER, "hf", "info", "model", "acme/nope")
    assert r.exit_code == ExitCode.NOT_FOUND and r.stdout == "" and len(r.stderr.splitlines()) == 1


def test_unreachable_endpoint_and_bad_output_folder(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATUTA_RETRY_BASE_S", "0.001")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = ["--endpoint", f"http://127.0.0.1:{port}", "hf"]
    error_document(run_cli(*dead, "search", "model", "x", "--json"), ExitCode.UNREACHABLE)
    afile = tmp_path / "afile.txt"
    afile.write_text("")
    error_document(run_cli(*dead, "pull", "model", "acme/tiny", "-o", str(afile), "--json"), ExitCode.USAGE)


def test_push_failures_write_one_document(run_cli: Run, hub: LocalHub, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    push = ["--endpoint", hub.url, "--token", READER, "hf", "push", "model"]
    error_document(run_cli(*push, str(folder), "--repo", "acme/tiny", "--json"), ExitCode.FORBIDDEN)
    error_document(run_cli(*push, str(tmp_path / "nope"), "--repo", "acme/tiny", "--json"), ExitCode.USAGE)
    # The secret refusal is the same document, with the (masked) findings.
    (folder / ".env").write_text("HF_TOKEN=hf_" + "a" * 34 + "\n")
    r = run_cli(*push, str(folder), "--repo", "acme/tiny", "--json")
    assert r.exit_code == ExitCode.SECRETS_FOUND
    doc = json.loads(r.stdout)["error"]
    assert doc["exit_code"] == ExitCode.SECRETS_FOUND and doc["message"].startswith("refusing to push")
    assert doc["findings"] and not [f for f in doc["findings"] if "a" * 34 in f]


def test_partial_pull_writes_only_its_own_document(run_cli: Run, tmp_path: Path) -> None:
    with LocalHub.in_thread() as hub:
        hub.add_repo("acme/half", {"good.safetensors": b"g" * 100, "bad.safetensors": b"b" * 100})
        hub.fail(status=500, times=100, path_contains="bad.safetensors")
        r = run_cli("--endpoint", hub.url, "hf", "pull", "model", "acme/half", "--json")
    doc = failed(r, ExitCode.INCOMPLETE)
    assert doc["downloaded"] == ["good.safetensors"] and "error" not in doc


@pytest.mark.parametrize(
    "args",
    [
        ["hf", "pull", "model", "--json"],
        ["hf", "info", "--json"],
        ["hf", "search", "model", "x", "--limit", "many", "--json"],
    ],
)
def test_usage_errors_found_by_the_parser_also_write_a_document(run_cli: Run, args: list[str]) -> None:
    error_document(run_cli(*args), ExitCode.USAGE)
    # Without --json, stdout stays empty.
    assert run_cli(*[a for a in args if a != "--json"]).stdout == ""
