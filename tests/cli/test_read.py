"""tree, search and info through the real entry point, against a LocalHub."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cli.errors import ExitCode
from engine.testing.hub import LocalHub
from tests.conftest import CliResult

Run = Callable[..., CliResult]
TOKEN = "hf_cli_reader_token_000000000000000"


@pytest.fixture(scope="module")
def hub() -> Iterator[LocalHub]:
    # Small pages, so a --limit above one page has to follow the Link header.
    with LocalHub.in_thread(list_page_size=10) as h:
        h.add_token(TOKEN, user="reader", role="read")
        h.add_repo(
            "acme/llama-tiny",
            {"config.json": b"{}", "model.safetensors": b"w" * 64, "pytorch_model.bin": b"p" * 32},
            meta={"pipeline_tag": "text-generation", "downloads": 50, "likes": 3, "license": "mit"},
        )
        h.add_repo(
            "acme/llama-gguf",
            {"README.md": b"#", "llama.Q4_K_M.gguf": b"q" * 10, "llama.Q8_0.gguf": b"q" * 20},
            meta={"pipeline_tag": "text-generation", "downloads": 10},
        )
        h.add_repo(
            "acme/bert-small", {"config.json": b"{}"}, meta={"pipeline_tag": "fill-mask", "downloads": 5}
        )
        for i in range(25):
            h.add_repo(f"many/llama-{i:02d}", {"config.json": b"{}"}, meta={"downloads": i})
        h.add_repo(
            "acme/speech",
            {"data.csv": b"a,b\n"},
            repo_type="dataset",
            meta={"tags": ["task_categories:automatic-speech-recognition"]},
        )
        h.add_repo("acme/demo", {"app.py": b"print(1)\n"}, repo_type="space", meta={"sdk": "gradio"})
        h.add_repo("acme/secret", {"config.json": b"{}"}, private=True)
        yield h


def ep(hub: LocalHub) -> list[str]:
    return ["--endpoint", hub.url]


def test_tree_ascii_and_json(run_cli: Run) -> None:
    r = run_cli("hf", "tree")
    assert r.exit_code == 0 and r.stdout.startswith("HuggingFace Ecosystem (6 categories)")
    doc = json.loads(run_cli("hf", "tree", "--format", "json").stdout)
    assert [c["name"] for c in doc["categories"]] == [
        "hub",
        "libraries",
        "inference",
        "training",
        "formats",
        "tasks",
    ]
    integ = json.loads(run_cli("hf", "tree", "--integration", "--format", "json").stdout)
    assert integ["total"] == 28 == sum(len(c["mappings"]) for c in integ["categories"])
    text = run_cli("hf", "tree", "--integration").stdout
    assert "28" in text and "COMPATIBLE" in text.upper()
    bad = run_cli("hf", "tree", "--format", "yaml")
    assert bad.exit_code == ExitCode.USAGE and "yaml" in bad.stderr


def test_search_table_json_and_filters(run_cli: Run, hub: LocalHub) -> None:
    r = run_cli(*ep(hub), "hf", "search", "model", "llama", "--task", "text-generation", "--json")
    doc = json.loads(r.stdout)
    assert {x["id"] for x in doc["results"]} == {"acme/llama-tiny", "acme/llama-gguf"}
    table = run_cli(*ep(hub), "hf", "search", "model", "llama", "--author", "acme", "--sort", "downloads")
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "task", "downloads"] and "acme/llama-tiny" in lines[1]
    ds = json.loads(
        run_cli(
            *ep(hub), "hf", "search", "dataset", "speech", "--task", "automatic-speech-recognition", "--json"
        ).stdout
    )
    assert [x["id"] for x in ds["results"]] == ["acme/speech"]
    sp = run_cli(*ep(hub), "hf", "search", "space", "demo", "--task", "x")
    assert sp.exit_code == ExitCode.USAGE


def test_search_limit_above_one_page_follows_pagination(run_cli: Run, hub: LocalHub) -> None:
    hub.reset()
    doc = json.loads(
        run_cli(*ep(hub), "hf", "search", "model", "many/llama", "--limit", "25", "--json").stdout
    )
    assert doc["count"] == 25 and len({x["id"] for x in doc["results"]}) == 25
    assert hub.stats().count("list") == 3  # pages of 10, 10 and 5
    default = json.loads(run_cli(*ep(hub), "hf", "search", "model", "many/llama", "--json").stdout)
    assert default["count"] == 10


def test_private_repos_need_a_token(run_cli: Run, hub: LocalHub) -> None:
    anon = run_cli(*ep(hub), "hf", "info", "model", "acme/secret")
    assert anon.exit_code == ExitCode.AUTH_REQUIRED and TOKEN not in anon.stderr
    ok = run_cli(*ep(hub), "--token", TOKEN, "hf", "info", "model", "acme/secret", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["private"] is True
    assert TOKEN not in ok.stdout


def test_info_reports_files_safety_and_quantizations(run_cli: Run, hub: LocalHub) -> None:
    doc = json.loads(run_cli(*ep(hub), "hf", "info", "model", "acme/llama-tiny", "--json").stdout)
    files = {f["path"]: f for f in doc["files"]}
    assert files["model.safetensors"]["safe"] and files["model.safetensors"]["lfs"]
    assert not files["pytorch_model.bin"]["safe"] and "pickle" in files["pytorch_model.bin"]["reason"]
    assert doc["total_bytes"] == 2 + 64 + 32 and len(doc["sha"]) == 40 and doc["task"] == "text-generation"
    gguf = json.loads(run_cli(*ep(hub), "hf", "info", "model", "acme/llama-gguf", "--json").stdout)
    assert gguf["quantizations"] == ["Q4_K_M", "Q8_0"]
    text = run_cli(*ep(hub), "hf", "info", "dataset", "acme/speech").stdout
    assert "acme/speech" in text and "data.csv" in text
    space = run_cli(*ep(hub), "hf", "info", "space", "acme/demo", "--json")
    assert json.loads(space.stdout)["id"] == "acme/demo"


@pytest.mark.parametrize("repo_id", ["a/b/c", "", "../x", "has space/x", "acme/"])
def test_invalid_repo_ids(run_cli: Run, hub: LocalHub, repo_id: str) -> None:
    r = run_cli(*ep(hub), "hf", "info", "model", repo_id)
    assert r.exit_code == ExitCode.USAGE and "invalid repo id" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_bad_input_is_one_line_and_non_zero(run_cli: Run, hub: LocalHub) -> None:
    cases = [
        (["hf", "info", "checkpoint", "acme/x"], ExitCode.USAGE, "unknown asset type"),
        (["hf", "search", "model", "x", "--limit", "0"], ExitCode.USAGE, "--limit"),
        (["hf", "search", "model", "x", "--limit", "-3"], ExitCode.USAGE, "--limit"),
        (["hf", "info", "model", "acme/llama-tiny", "--revision", "v9"], ExitCode.NOT_FOUND, "revision 'v9'"),
        (["hf", "info", "model", "acme/nope"], ExitCode.AUTH_REQUIRED, "private, or does not exist"),
        (["--token", TOKEN, "hf", "info", "model", "acme/nope"], ExitCode.NOT_FOUND, "acme/nope"),
        (["hf", "search", "model", "x", "--sort", "size"], ExitCode.USAGE, "sort"),
    ]
    for args, code, text in cases:
        r = run_cli(*ep(hub), *args)
        assert r.exit_code == code, (args, r)
        assert text in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r)


def test_unreachable_endpoint_is_named(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATUTA_RETRY_BASE_S", "0.001")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_cli("--endpoint", f"http://127.0.0.1:{port}", "hf", "search", "model", "x")
    assert r.exit_code == ExitCode.UNREACHABLE and f"127.0.0.1:{port}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


class _Html(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = (
            b"<!doctype html><html><body>login</body></html>" if "models" in self.path else b"\x00\x01garbage"
        )
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_endpoint_that_answers_html_or_garbage(run_cli: Run) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        html = run_cli("--endpoint", url, "hf", "search", "model", "x")
        assert html.exit_code == ExitCode.SERVER_ERROR and "HTML" in html.stderr
        junk = run_cli("--endpoint", url, "hf", "info", "dataset", "acme/x")
        assert junk.exit_code == ExitCode.SERVER_ERROR and "not a Hub API response" in junk.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_offline_mode_with_nothing_cached(
    run_cli: Run, hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.reset()
    for args in (["hf", "search", "model", "x"], ["hf", "info", "model", "acme/llama-tiny"]):
        r = run_cli(*ep(hub), *args)
        assert r.exit_code == ExitCode.OFFLINE and "offline" in r.stderr
    assert hub.stats().total == 0


@pytest.mark.parametrize("command", ["search", "info", "pull", "push"])
def test_help_describes_every_argument(run_cli: Run, command: str) -> None:
    r = run_cli("hf", command, "--help")
    assert r.exit_code == 0
    assert "Asset type:" in r.stdout  # the ASSET argument's own help
    assert "\\[" not in r.stdout  # no markup escapes leaking into plain text


@pytest.mark.parametrize(
    "args",
    [["info", "model", "acme/llama-tiny"], ["search", "model", "llama"]],
    ids=["info", "search"],
)
def test_info_and_search_say_why_they_wait(run_cli: Run, hub: LocalHub, args: list[str]) -> None:
    hub.reset()
    hub.fail(status=429, times=1, retry_after="1", path_contains="/api/models")
    r = run_cli(*ep(hub), "-v", "hf", *args, "--json")
    assert r.exit_code == 0 and "error" not in json.loads(r.stdout)  # stdout stays one document
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("waiting 1 s for 127.0.0.1:") and "HTTP 429" in lines[0]
    assert lines[1].startswith("retry 1 in 1.0 s (429): ")
    hub.fail(status=429, times=1, retry_after="1", path_contains="/api/models")
    quiet = run_cli(*ep(hub), "hf", *args)
    assert quiet.exit_code == 0 and quiet.stderr.startswith("waiting 1 s") and "retry" not in quiet.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_output_that_cannot_be_written_is_one_line_not_a_traceback() -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "cli", "hf", "tree"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr == "error: cannot write the output: No space left on device\n"


def test_a_token_with_line_breaks_inside_is_cleaned_as_the_official_client_does(
    run_cli: Run, hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = f"{TOKEN[:10]}\r\n{TOKEN[10:]}\n"  # pasted across lines, or a file saved with CRLF
    (tmp_path / "token").write_text(broken)
    sources: list[tuple[list[str], dict[str, str]]] = [
        (["--token", broken], {}),
        ([], {"HF_TOKEN": broken}),
        ([], {"HUGGING_FACE_HUB_TOKEN": broken}),
        ([], {"HF_TOKEN": "\n", "HF_TOKEN_PATH": str(tmp_path / "token")}),  # blank: the file is read
    ]
    for args, env in sources:
        with monkeypatch.context() as m:
            for name, value in env.items():
                m.setenv(name, value)
            r = run_cli(*ep(hub), *args, "hf", "info", "model", "acme/secret", "--json")
        assert r.exit_code == 0 and json.loads(r.stdout)["private"] is True, (args, env, r)


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("--token", "hf_tab\there_000000000"),
        ("HF_TOKEN", "hf_\udce9_raw_byte_0000000"),  # HF_TOKEN=$'hf_\xe9': not UTF-8, decoded as a surrogate
        ("HF_TOKEN", "hf_euro_\u20ac_00000000"),
        ("HF_TOKEN_PATH", "hf_nul_\x00_000000000"),
    ],
)
def test_a_token_that_cannot_go_in_a_header_is_a_usage_error_that_never_shows_it(
    run_cli: Run, hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, value: str
) -> None:
    args = []
    if source == "--token":
        args = ["--token", value]
    elif source == "HF_TOKEN_PATH":
        (tmp_path / "token").write_text(value)
        monkeypatch.setenv(source, str(tmp_path / "token"))
    else:
        monkeypatch.setenv(source, value)
    hub.reset()
    for as_json in ([], ["--json"]):
        r = run_cli(*ep(hub), *args, "hf", "info", "model", "acme/secret", *as_json)
        assert r.exit_code == ExitCode.USAGE and "Traceback" not in r.stderr, r
        expected = "the token from {} cannot be sent in an HTTP header".format(
            f"the file {tmp_path / 'token'}" if source == "HF_TOKEN_PATH" else source
        )
        assert r.stderr.startswith(f"error: {expected}: ") and len(r.stderr.splitlines()) == 1, r
        assert "_0000" not in r.stderr + r.stdout  # no part of the token is shown
        if as_json:
            assert json.loads(r.stdout)["error"]["exit_code"] == ExitCode.USAGE
        else:
            assert r.stdout == ""
    assert hub.stats().total == 0


def test_a_token_file_that_is_not_utf8_is_a_usage_error(
    run_cli: Run, hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_bytes(b"hf_a\xe9b")
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "token"))
    r = run_cli(*ep(hub), "hf", "info", "model", "acme/secret", "--json")
    assert (
        r.exit_code == ExitCode.USAGE
        and r.stderr == f"error: the token file {tmp_path / 'token'} is not UTF-8 text\n"
    )
    assert json.loads(r.stdout)["error"]["exit_code"] == ExitCode.USAGE
