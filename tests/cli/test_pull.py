"""pull through the CLI: JSON summary, dry run, safety, traversal, kill -9 resume, cache interop."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli.errors import ExitCode
from engine.testing.hub import LocalHub
from tests.cli.test_terminal import HIDE_CURSOR, env_for
from tests.cli.test_terminal import run as run_on_terminal
from tests.conftest import CliResult, json_endpoint

Run = Callable[..., CliResult]
MiB = 1024 * 1024


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    with LocalHub.in_thread() as h:
        yield h


def ep(hub: LocalHub) -> list[str]:
    return ["--endpoint", hub.url]


def test_pull_json_summary_and_dry_run(run_cli: Run, hub: LocalHub, isolated_home: Path) -> None:
    commit = hub.add_repo(
        "acme/tiny", {"config.json": b"{}", "model.safetensors": b"w" * 1000, "extra.pt": b"p"}
    )
    plan = json.loads(run_cli(*ep(hub), "hf", "pull", "model", "acme/tiny", "--dry-run", "--json").stdout)
    assert plan["dry_run"] and {f["path"]: f["action"] for f in plan["files"]} == {
        "config.json": "download",
        "model.safetensors": "download",
    }
    assert [b["path"] for b in plan["blocked"]] == ["extra.pt"]
    assert hub.stats().count("resolve") == 0 and hub.stats().blob_bytes_sent == 0
    r = run_cli(*ep(hub), "hf", "pull", "model", "acme/tiny", "--json")
    doc = json.loads(r.stdout)
    assert (
        r.exit_code == 0
        and doc["commit"] == commit
        and sorted(doc["downloaded"]) == ["config.json", "model.safetensors"]
    )
    assert set(doc) >= {"files", "bytes_downloaded", "seconds", "mb_per_s", "skipped", "blocked", "retries"}
    assert "--allow-unsafe" in r.stderr
    again = json.loads(run_cli(*ep(hub), "hf", "pull", "model", "acme/tiny", "--json").stdout)
    assert again["downloaded"] == [] and sorted(again["skipped"]) == ["config.json", "model.safetensors"]
    unsafe = run_cli(*ep(hub), "hf", "pull", "model", "acme/tiny", "--allow-unsafe", "--quiet")
    assert (
        unsafe.exit_code == 0
        and unsafe.stdout == f"{isolated_home / 'hub' / 'models--acme--tiny' / 'snapshots' / commit}\n"
    )
    assert "warning: downloaded unsafe file extra.pt (pickle-based format (.pt))" in unsafe.stderr
    assert "1 downloaded, 2 already present, 0 blocked" in unsafe.stderr
    safe = run_cli(*ep(hub), "hf", "pull", "model", "acme/tiny", "--quiet")
    assert "1 unsafe file was not downloaded (pass --allow-unsafe to get them)" in safe.stderr
    plan_text = run_cli(*ep(hub), "hf", "pull", "model", "acme/tiny", "--dry-run")
    assert "not downloaded" not in plan_text.stderr
    assert re.search(r"^blocked +extra\.pt +1 B$", plan_text.stdout, re.M), plan_text.stdout


def test_pull_human_output_and_options(run_cli: Run, hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo("acme/tiny", {"config.json": b"{}", "model.safetensors": b"w" * 1000})
    out = tmp_path / "models"
    r = run_cli(
        *ep(hub),
        "hf",
        "pull",
        "model",
        "acme/tiny",
        "-o",
        str(out),
        "--max-connections",
        "2",
        "--max-rate",
        "50M",
        "--quiet",
    )
    # The summary goes to stderr; stdout is the folder alone, for DIR=$(batuta hf pull ...).
    assert r.exit_code == 0 and "pulled acme/tiny" in r.stderr and r.stdout == f"{out}\n"
    assert (out / "model.safetensors").read_bytes() == b"w" * 1000
    for bad in (["--max-rate", "fast"], ["--max-connections", "0"]):
        b = run_cli(*ep(hub), "hf", "pull", "model", "acme/tiny", *bad)
        assert b.exit_code == ExitCode.USAGE and len(b.stderr.strip().splitlines()) == 1


def test_unknown_quantization_lists_the_available_ones(run_cli: Run, hub: LocalHub) -> None:
    hub.add_repo("acme/gguf", {"m.Q4_K_M.gguf": b"a", "m.Q8_0.gguf": b"b"})
    r = run_cli(*ep(hub), "hf", "pull", "model", "acme/gguf", "--quantization", "Q3_K_S")
    assert r.exit_code == ExitCode.USAGE and "Q4_K_M, Q8_0" in r.stderr


def _evil(path: str) -> object:
    """A server that lists a path escaping the destination."""
    if "/tree/" in path:
        return [{"type": "file", "path": "../escape.txt", "oid": "0" * 40, "size": 3}]
    return {"id": "evil/repo", "sha": "a" * 40, "siblings": []}


def test_path_traversal_from_the_server_is_refused(run_cli: Run, tmp_path: Path) -> None:
    with json_endpoint(_evil) as url:
        out = tmp_path / "dest"
        r = run_cli("--endpoint", url, "hf", "pull", "model", "evil/repo", "-o", str(out))
        # Not the caller's mistake (2): a server that does not answer like a Hub (8).
        assert r.exit_code == ExitCode.SERVER_ERROR and r.stderr.splitlines() == [
            "error: refusing unsafe path from server: '../escape.txt'"
        ]
        assert not (tmp_path / "escape.txt").exists() and not out.exists()


def _batuta(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_kill_9_mid_file_then_resume_moves_fewer_bytes(hub: LocalHub, isolated_home: Path) -> None:
    blob = os.urandom(24 * MiB)
    commit = hub.add_repo("acme/resume", {"model.safetensors": blob})
    hub.throttle(per_conn_bytes_s=2 * MiB)
    env = {**os.environ, "HF_HOME": str(isolated_home)}
    args = ("--endpoint", hub.url, "hf", "pull", "model", "acme/resume", "--quiet", "--max-connections", "2")
    proc = _batuta(*args, env=env)
    cache = isolated_home / "hub" / "models--acme--resume" / "blobs"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        prog = list(cache.glob("*.progress")) if cache.exists() else []
        if prog and hub.stats().blob_bytes_sent > 4 * MiB:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    first = hub.stats().blob_bytes_sent
    assert 0 < first < len(blob)
    hub.reset()
    done = subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    second = hub.stats().blob_bytes_sent
    assert second < len(blob)  # the bytes already on disk were not fetched again
    snap = isolated_home / "hub" / "models--acme--resume" / "snapshots" / commit / "model.safetensors"
    assert hashlib.sha256(snap.read_bytes()).digest() == hashlib.sha256(blob).digest()


def test_ctrl_c_anywhere_in_a_command_exits_130_with_one_line(
    run_cli: Run, hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Typer hands back a Ctrl-C inside a command as a return value of 130, not as an exception:
    # this pull used to exit 0, as if it had succeeded.
    import cli.runner

    def interrupted(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.runner, "load", interrupted)
    r = run_cli(*ep(hub), "hf", "pull", "model", "acme/none")
    assert r.exit_code == ExitCode.INTERRUPTED and r.stderr == "error: interrupted\n" and r.stdout == ""


def test_sigint_during_a_pull_exits_130_then_the_same_command_finishes(
    hub: LocalHub, isolated_home: Path
) -> None:
    blob = os.urandom(16 * MiB)
    commit = hub.add_repo("acme/sigint", {"model.safetensors": blob})
    hub.throttle(per_conn_bytes_s=2 * MiB)
    env = {**os.environ, "HF_HOME": str(isolated_home)}
    args = ("--endpoint", hub.url, "hf", "pull", "model", "acme/sigint", "--quiet", "--max-connections", "2")
    blobs = isolated_home / "hub" / "models--acme--sigint" / "blobs"
    milestones: list[Callable[[], bool]] = [
        lambda: hub.stats().total > 0,  # the engine is talking to the Hub
        lambda: blobs.exists() and any(blobs.glob("*.progress")),  # mid-file
    ]
    for reached in milestones:
        proc = _batuta(*args, env=env)
        deadline = time.monotonic() + 20
        while not reached() and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == ExitCode.INTERRUPTED, err
        assert err.decode().splitlines() == ["error: interrupted"]
    snap = isolated_home / "hub" / "models--acme--sigint" / "snapshots" / commit / "model.safetensors"
    assert not snap.exists()
    done = subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert snap.read_bytes() == blob


def test_two_processes_pulling_the_same_repo_do_not_corrupt_the_cache(
    hub: LocalHub, isolated_home: Path
) -> None:
    files = {"model.safetensors": os.urandom(3 * MiB), "config.json": b"{}"}
    commit = hub.add_repo("acme/race", files)
    hub.throttle(per_conn_bytes_s=8 * MiB)
    env = {**os.environ, "HF_HOME": str(isolated_home)}
    args = ("--endpoint", hub.url, "hf", "pull", "model", "acme/race", "--quiet")
    procs = [_batuta(*args, env=env) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    snap = isolated_home / "hub" / "models--acme--race" / "snapshots" / commit
    assert (snap / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert not [p for p in (snap.parent.parent / "blobs").iterdir() if ".incomplete" in p.name]


def _official(code: str, hub: LocalHub, home: Path, offline: bool = False) -> str:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_DISABLE_XET": "1"}
    env.pop("HF_HUB_CACHE", None)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_official_client_loads_what_batuta_pulled_offline(
    run_cli: Run, hub: LocalHub, isolated_home: Path
) -> None:
    files = {"config.json": b'{"a": 1}', "model.safetensors": os.urandom(2 * MiB), "sub/tok.txt": b"t" * 10}
    hub.add_repo("acme/interop", files)
    assert run_cli(*ep(hub), "hf", "pull", "model", "acme/interop", "--quiet").exit_code == 0
    hub.reset()
    out = _official(
        """
        import hashlib, json, os
        from huggingface_hub import hf_hub_download, snapshot_download
        snap = snapshot_download("acme/interop", local_files_only=True)
        one = hf_hub_download("acme/interop", "model.safetensors", local_files_only=True)
        digests = {}
        for root, _, names in os.walk(snap):
            for n in names:
                p = os.path.join(root, n)
                digests[os.path.relpath(p, snap)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
        print(json.dumps({"files": digests, "one": hashlib.sha256(open(one, "rb").read()).hexdigest()}))
        """,
        hub,
        isolated_home,
        offline=True,
    )
    doc = json.loads(out)
    assert doc["files"] == {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    assert doc["one"] == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert hub.stats().total == 0


def test_batuta_reuses_what_the_official_client_downloaded(
    run_cli: Run, hub: LocalHub, isolated_home: Path
) -> None:
    files = {"config.json": b'{"a": 1}', "model.safetensors": os.urandom(2 * MiB)}
    commit = hub.add_repo("acme/interop2", files)
    _official(
        'from huggingface_hub import snapshot_download; snapshot_download("acme/interop2")',
        hub,
        isolated_home,
    )
    hub.reset()
    doc = json.loads(run_cli(*ep(hub), "hf", "pull", "model", "acme/interop2", "--json").stdout)
    assert doc["commit"] == commit and doc["downloaded"] == [] and doc["bytes_downloaded"] == 0
    assert hub.stats().blob_bytes_sent == 0 and hub.stats().count("resolve") == 0


def test_persistent_corruption_fails_with_integrity_and_leaves_nothing(
    run_cli: Run, hub: LocalHub, isolated_home: Path
) -> None:
    blob = os.urandom(10 * 1024)
    commit = hub.add_repo("acme/bad", {"model.safetensors": blob, "config.json": b"{}"})
    hub.flip_byte_once(path_contains="/blobs/", offset=3)
    hub.flip_byte_once(path_contains="/blobs/", offset=3)
    r = run_cli(*ep(hub), "hf", "pull", "model", "acme/bad", "--quiet")
    assert r.exit_code == ExitCode.INTEGRITY and "sha256 mismatch" in r.stderr
    assert len(r.stderr.splitlines()) == 1  # one failed file: the error line names it, once
    assert hub.stats().faults_fired.get("flip") == 2  # fetched, refetched once, then gave up
    repo = isolated_home / "hub" / "models--acme--bad"
    assert not (repo / "snapshots" / commit / "model.safetensors").exists()
    assert (repo / "snapshots" / commit / "config.json").read_bytes() == b"{}"
    assert not [p.name for p in (repo / "blobs").iterdir() if p.stat().st_size == len(blob)]


def test_one_failing_file_makes_an_honest_non_zero_exit(
    run_cli: Run, hub: LocalHub, isolated_home: Path
) -> None:
    hub.add_repo("acme/half", {"good.safetensors": b"g" * 100, "bad.safetensors": b"b" * 100})
    hub.fail(status=500, times=100, path_contains="bad.safetensors")
    r = run_cli(*ep(hub), "hf", "pull", "model", "acme/half", "--json")
    assert r.exit_code == ExitCode.INCOMPLETE and "bad.safetensors" in r.stderr
    doc = json.loads(r.stdout)
    assert doc["downloaded"] == ["good.safetensors"] and [f["path"] for f in doc["failed"]] == [
        "bad.safetensors"
    ]


def test_info_offline_answers_from_the_cache(
    run_cli: Run, hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = hub.add_repo("acme/cached", {"config.json": b"{}", "model.safetensors": b"w" * 64})
    assert run_cli(*ep(hub), "hf", "pull", "model", "acme/cached", "--quiet").exit_code == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.reset()
    doc = json.loads(run_cli(*ep(hub), "hf", "info", "model", "acme/cached", "--json").stdout)
    assert doc["sha"] == commit and {f["path"]: f["size"] for f in doc["files"]} == {
        "config.json": 2,
        "model.safetensors": 64,
    }
    missing = run_cli(*ep(hub), "hf", "info", "model", "acme/other")
    assert missing.exit_code == ExitCode.OFFLINE and "not in the cache" in missing.stderr
    assert hub.stats().total == 0


def test_named_files_cache_dir_and_force_download(
    run_cli: Run, hub: LocalHub, tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"config.json": b'{"a": 1}', "model.safetensors": os.urandom(3 * MiB), "tokenizer.json": b"{}"}
    commit = hub.add_repo("acme/named", files)
    cache = tmp_path / "elsewhere"
    pull = [*ep(hub), "hf", "pull", "model", "acme/named"]
    r = run_cli(*pull, "config.json", "./model.safetensors", "--cache-dir", str(cache), "--json")
    assert r.exit_code == 0 and sorted(json.loads(r.stdout)["downloaded"]) == [
        "config.json",
        "model.safetensors",
    ]
    snap = cache / "models--acme--named" / "snapshots" / commit
    assert sorted(p.name for p in snap.iterdir()) == ["config.json", "model.safetensors"]
    assert not (isolated_home / "hub").exists()
    loaded = _official(
        f"""
        from huggingface_hub import hf_hub_download
        print(open(hf_hub_download("acme/named", "config.json", cache_dir={str(cache)!r}), "rb").read().decode())
        """,
        hub,
        tmp_path / "official-home",
        offline=True,
    )
    assert loaded.strip() == files["config.json"].decode()
    missing = run_cli(*pull, "config.json", "missing.txt")
    assert (
        missing.exit_code == ExitCode.USAGE
        and "acme/named has no file or folder named missing.txt" in missing.stderr
    )

    # A blob damaged after it was verified: a plain pull trusts the cache, --force-download repairs it.
    blob = (snap / "model.safetensors").resolve()
    blob.write_bytes(b"x" * len(files["model.safetensors"]))
    hub.reset()
    again = run_cli(*pull, "model.safetensors", "--cache-dir", str(cache), "--json")
    assert json.loads(again.stdout)["downloaded"] == [] and hub.stats().blob_bytes_sent == 0
    forced = run_cli(*pull, "model.safetensors", "--cache-dir", str(cache), "--force-download", "--json")
    assert forced.exit_code == 0 and json.loads(forced.stdout)["downloaded"] == ["model.safetensors"]
    assert blob.read_bytes() == files["model.safetensors"] and (snap / "model.safetensors").resolve() == blob
    out = tmp_path / "plain"
    assert run_cli(*pull, "config.json", "-o", str(out), "--quiet").exit_code == 0
    hub.reset()
    forced = run_cli(*pull, "config.json", "-o", str(out), "--force-download", "--json")
    assert (
        json.loads(forced.stdout)["downloaded"] == ["config.json"]
        and hub.stats().count("resolve", "GET") == 1
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = run_cli(*pull, "-o", str(out), "--force-download")
    assert offline.exit_code == ExitCode.USAGE and "needs the network" in offline.stderr
    bad = run_cli(*pull, "--cache-dir", str(out / "config.json"))
    assert bad.exit_code == ExitCode.USAGE and "is not a folder" in bad.stderr


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_an_unreachable_hub_falls_back_to_a_complete_cached_snapshot(
    run_cli: Run, hub: LocalHub, tmp_path: Path, isolated_home: Path
) -> None:
    commit = hub.add_repo("acme/cached", {"config.json": b"{}", "model.safetensors": b"w" * 64, "x.pt": b"p"})
    out = tmp_path / "plain"
    for dest in ([], ["-o", str(out)]):
        assert run_cli(*ep(hub), "hf", "pull", "model", "acme/cached", "--quiet", *dest).exit_code == 0
        # The Hub is down (503 on every API call, after the retries) or gone (nothing listens).
        hub.fail(status=503, times=100, path_contains="/api/")
        for endpoint in (hub.url, _closed_port_url()):
            r = run_cli("--endpoint", endpoint, "hf", "pull", "model", "acme/cached", "--json", *dest)
            doc = json.loads(r.stdout)
            assert r.exit_code == 0 and doc["commit"] == commit and doc["downloaded"] == []
            assert sorted(doc["skipped"]) == ["config.json", "model.safetensors"]
            assert doc["hub_unreachable"] and "could not be reached" in r.stderr
            # A server that answers 503 is retried; a port where nothing listens is not.
            assert doc["retries"] == (5 if endpoint == hub.url else 0)
        hub.reset()
    # Only a complete snapshot answers: the network error stands when a selected file is missing,
    # including one that was blocked before and is now asked for.
    dead = _closed_port_url()
    r = run_cli("--endpoint", dead, "hf", "pull", "model", "acme/cached", "--allow-unsafe")
    assert r.exit_code == ExitCode.UNREACHABLE and r.stderr.startswith("error: cannot reach")
    (out / "config.json").unlink()
    r = run_cli("--endpoint", dead, "hf", "pull", "model", "acme/cached", "-o", str(out))
    assert r.exit_code == ExitCode.UNREACHABLE and "could not be reached" not in r.stderr
    # A partial cache with no recorded file list (the official client fetched one file) looks
    # complete: it is not used as an answer.
    hub.add_repo("acme/partial-cache", {"config.json": b"{}", "model.safetensors": b"w" * 64})
    _official(
        'from huggingface_hub import hf_hub_download; hf_hub_download("acme/partial-cache", "config.json")',
        hub,
        isolated_home,
    )
    r = run_cli("--endpoint", dead, "hf", "pull", "model", "acme/partial-cache")
    assert r.exit_code == ExitCode.UNREACHABLE and "could not be reached" not in r.stderr
    # A repo that does not exist is not a network failure: no fallback, the Hub's answer stands.
    r = run_cli(*ep(hub), "hf", "pull", "model", "acme/other")
    assert r.exit_code in (ExitCode.NOT_FOUND, ExitCode.AUTH_REQUIRED)


def test_an_unreachable_hub_accepts_a_folder_of_the_official_client_as_offline_mode_does(
    run_cli: Run, hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("acme/official", {"config.json": b"{}", "model.safetensors": b"w" * 64})
    out = tmp_path / "official"
    _official(
        f'from huggingface_hub import snapshot_download; snapshot_download("acme/official", local_dir={str(out)!r})',
        hub,
        tmp_path / "official-home",
    )
    pull = ["hf", "pull", "model", "acme/official", "-o", str(out), "--json"]
    dead = _closed_port_url()
    r = run_cli("--endpoint", dead, *pull)
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["hub_unreachable"] and doc["downloaded"] == []
    assert sorted(doc["skipped"]) == ["config.json", "model.safetensors"]
    # The notice says the answer rests on the folder's download metadata, not on a file list.
    assert f"using the 2 files of {out} that its download metadata lists" in r.stderr
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = run_cli(*pull)
    assert offline.exit_code == 0 and json.loads(offline.stdout)["files"] == doc["files"]
    # A file the metadata lists but the folder lost: the network error stands.
    (out / "config.json").unlink()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    r = run_cli("--endpoint", dead, *pull)
    assert r.exit_code == ExitCode.UNREACHABLE and "could not be reached" not in r.stderr


def test_hf_hub_disable_progress_bars_silences_the_display_as_quiet_does(
    hub: LocalHub, tmp_path: Path
) -> None:
    hub.add_repo("acme/term", {"config.json": b"{}", "model.safetensors": os.urandom(4 * MiB)})
    hub.throttle(per_conn_bytes_s=8 * MiB)  # long enough for a display to draw
    pull = ["hf", "pull", "model", "acme/term"]
    for value, drawn in [("1", False), ("0", True)]:  # the official client's rule: only true disables
        env = {**env_for(hub, tmp_path / "home"), "HF_HUB_DISABLE_PROGRESS_BARS": value}
        code, screen, _ = run_on_terminal([*pull, "-o", str(tmp_path / value)], env)
        assert code == 0 and (HIDE_CURSOR in screen) is drawn and "pulled acme/term@main" in screen


def test_official_client_trusts_batuta_local_dir_metadata(
    run_cli: Run, hub: LocalHub, tmp_path: Path
) -> None:
    files = {"config.json": b'{"a": 1}', "model.safetensors": os.urandom(2 * MiB)}
    hub.add_repo("acme/localdir", files)
    out = tmp_path / "plain"
    assert run_cli(*ep(hub), "hf", "pull", "model", "acme/localdir", "-o", str(out), "--quiet").exit_code == 0
    hub.reset()
    _official(
        f'from huggingface_hub import snapshot_download; snapshot_download("acme/localdir", local_dir={str(out)!r})',
        hub,
        tmp_path / "official-home",
    )
    stats = hub.stats()
    # The official client read our .cache/huggingface/download/*.metadata and fetched no content.
    assert stats.blob_bytes_sent == 0 and stats.count("resolve", "GET") == 0
    assert (out / "model.safetensors").read_bytes() == files["model.safetensors"]


def test_a_failure_that_ends_the_pull_is_said_once(run_cli: Run, hub: LocalHub) -> None:
    hub.add_repo("acme/gated-llama", {"config.json": b"{}", "model.safetensors": b"w" * 100}, gated=True)
    r = run_cli(*ep(hub), "hf", "pull", "model", "acme/gated-llama")
    assert r.exit_code == ExitCode.GATED and r.stdout == ""
    assert r.stderr.splitlines() == [
        "error: acme/gated-llama is gated: access not granted (set HF_TOKEN or pass --token)"
    ]


def test_a_partial_pull_lists_each_failed_file_then_one_error_line(run_cli: Run, hub: LocalHub) -> None:
    hub.add_repo(
        "acme/partial",
        {"good.safetensors": b"g" * 100, "down.safetensors": b"d" * 100, "gone.safetensors": b"x" * 100},
    )
    hub.fail(status=500, times=100, path_contains="down.safetensors")
    hub.fail(status=404, times=100, path_contains="gone.safetensors")
    r = run_cli(*ep(hub), "hf", "pull", "model", "acme/partial", "--quiet")
    assert r.exit_code == ExitCode.INCOMPLETE
    lines = r.stderr.splitlines()
    assert sorted(ln.split(":")[1].strip() for ln in lines[:-1]) == ["down.safetensors", "gone.safetensors"]
    assert all(ln.startswith("failed: ") for ln in lines[:-1]) and len(set(lines)) == len(lines)
    assert lines[-1].startswith("error: 2 of 3 files failed: ")


@pytest.mark.parametrize("under", [False, True])
def test_output_that_is_not_a_folder_is_a_usage_error_before_any_request(
    run_cli: Run, hub: LocalHub, tmp_path: Path, under: bool
) -> None:
    hub.add_repo("acme/tiny", {"config.json": b"{}"})
    afile = tmp_path / "afile.txt"
    afile.write_text("keep me")
    target = afile / "sub" if under else afile
    hub.reset()
    r = run_cli(*ep(hub), "hf", "pull", "model", "acme/tiny", "-o", str(target))
    assert r.exit_code == ExitCode.USAGE and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"error: --output '{target}' is not a folder" + (f" ('{afile}' is a file)" if under else "")
    ]
    assert hub.stats().total == 0 and afile.read_text() == "keep me"


def test_output_the_system_cannot_look_at_is_a_usage_error(
    run_cli: Run, hub: LocalHub, tmp_path: Path
) -> None:
    target = tmp_path / ("a" * 300) / "x"  # a name over NAME_MAX: stat itself fails
    r = run_cli(*ep(hub), "hf", "pull", "model", "acme/tiny", "--json", "-o", str(target))
    assert r.exit_code == ExitCode.USAGE and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [f"error: --output '{target}': File name too long"]
    assert json.loads(r.stdout)["error"]["exit_code"] == ExitCode.USAGE
    assert hub.stats().total == 0


def test_a_folder_in_the_way_fails_the_same_way_whatever_else_is_pulled(
    run_cli: Run, hub: LocalHub, tmp_path: Path
) -> None:
    hub.add_repo("acme/tiny", {"config.json": b"{}", "model.safetensors": b"w" * 100})
    out = tmp_path / "w"
    (out / "config.json").mkdir(parents=True)
    pull = [*ep(hub), "hf", "pull", "model", "acme/tiny", "-o", str(out), "--quiet"]
    # The whole repo, the re-run with only that file left to do, and that file named alone.
    for args in ([], [], ["config.json"]):
        r = run_cli(*pull, *args)
        assert r.exit_code == ExitCode.INCOMPLETE and r.stdout == "", (args, r)
        assert r.stderr.splitlines()[-1] == (
            f"error: 1 of {2 - len(args)} files failed: config.json: a folder is where the file goes: "
            f"{out / 'config.json'}"
        ), (args, r)
        doc = json.loads(run_cli(*pull, *args, "--json").stdout)
        assert doc["failed"] == [
            {
                "path": "config.json",
                "reason": f"a folder is where the file goes: {out / 'config.json'}",
                "kind": "IsADirectoryError",
            }
        ]
    assert (out / "model.safetensors").read_bytes() == b"w" * 100 and (out / "config.json").is_dir()


@pytest.mark.parametrize("option", ["-o", "--output", "--cache-dir"])
def test_an_empty_folder_option_is_a_usage_error_not_the_current_folder(
    run_cli: Run, hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    # `-o "$DIR"` with DIR unset: Path("") is ".", and the pull went into the current folder.
    hub.add_repo("acme/tiny", {"config.json": b"{}"})
    monkeypatch.chdir(tmp_path)
    hub.reset()
    for as_json in ([], ["--json"]):
        r = run_cli(*ep(hub), "hf", "pull", "model", "acme/tiny", option, "", *as_json)
        assert r.exit_code == ExitCode.USAGE and len(r.stderr.splitlines()) == 1, r
        named = "'--cache-dir'" if option == "--cache-dir" else "'--output'"
        assert "an empty path is not a folder" in r.stderr and named in r.stderr
        if as_json:
            assert json.loads(r.stdout)["error"]["exit_code"] == ExitCode.USAGE
        else:
            assert r.stdout == ""
    assert hub.stats().total == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["hf_home"]


def test_one_named_file_prints_its_path_as_hf_download_does(
    run_cli: Run, hub: LocalHub, tmp_path: Path, isolated_home: Path
) -> None:
    files = {"config.json": b'{"a": 1}', "sub/tok.txt": b"tok", "model.safetensors": b"w" * 100}
    commit = hub.add_repo("acme/tiny", files)
    snap = isolated_home / "hub" / "models--acme--tiny" / "snapshots" / commit
    out = tmp_path / "plain"
    pull = [*ep(hub), "hf", "pull", "model", "acme/tiny", "--quiet"]
    for dest, folder in (([], snap), (["-o", str(out)], out)):
        for _ in range(2):  # pulled, then present
            for name in ("config.json", "./sub/tok.txt"):
                r = run_cli(*pull, name, *dest)
                shown = Path(r.stdout.removesuffix("\n"))
                assert r.exit_code == 0 and shown == folder / name.removeprefix("./"), r
                assert shown.read_bytes() == files[name.removeprefix("./")]  # cat "$(batuta hf pull ...)"
        # Several files, a folder, or none: the folder.
        assert run_cli(*pull, "config.json", "sub/tok.txt", *dest).stdout == f"{folder}\n"
        assert run_cli(*pull, "sub/", *dest).stdout == f"{folder}\n"
        assert run_cli(*pull, *dest).stdout == f"{folder}\n"


def test_a_relative_output_folder_is_printed_absolute(
    run_cli: Run, hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parity: `hf download --local-dir ldo` prints the folder's absolute path; batuta printed `ldo`.
    hub.add_repo("acme/tiny", {"config.json": b"{}", "sub/a.txt": b"a"})
    monkeypatch.chdir(tmp_path)
    r = run_cli(*ep(hub), "hf", "pull", "model", "acme/tiny", "sub/", "-o", "ldo", "--quiet")
    assert r.exit_code == 0 and r.stdout == f"{tmp_path / 'ldo'}\n", r
    assert (tmp_path / "ldo" / "sub" / "a.txt").read_bytes() == b"a"
    assert not (tmp_path / "ldo" / "config.json").exists()  # only the folder named


BAD_REVISIONS = ["a b", "main ", "a\tb", "x~1", "HEAD^", "a:b", "v*", "a?", "a[0]", "a\\b", "@", "main@{1}"]
BAD_REVISIONS += ["/main", "main/", "a//b", ".hidden", "a/.b", "a.lock", "a.", "a..b", "a\nb"]


def test_a_revision_git_would_refuse_is_a_usage_error_before_any_request(run_cli: Run, hub: LocalHub) -> None:
    commit = hub.add_repo("acme/tiny", {"config.json": b"{}"})
    hub.add_repo("acme/tiny", {"config.json": b'{"b": 1}'}, revision="feature/x.y")
    hub.add_repo("acme/tiny", {"config.json": b'{"t": 1}'}, revision="refs/tags/v1.0")
    hub.reset()
    for bad in BAD_REVISIONS:
        for cmd in (["pull", "model", "acme/tiny", "--quiet"], ["info", "model", "acme/tiny"]):
            r = run_cli(*ep(hub), "hf", *cmd, "--revision", bad)
            assert r.exit_code == ExitCode.USAGE and len(r.stderr.splitlines()) == 1, (bad, r)
            assert r.stderr.startswith("error: invalid revision '"), (bad, r)
    assert hub.stats().total == 0
    # Commit shas, branches with slashes and dots, tags with dots: still fine.
    for good in (commit, "feature/x.y", "v1.0", "main"):
        r = run_cli(
            *ep(hub), "hf", "pull", "model", "acme/tiny", "config.json", "--quiet", "--revision", good
        )
        assert r.exit_code == 0, (good, r)
    unknown = run_cli(*ep(hub), "hf", "pull", "model", "acme/tiny", "--revision", "refs/pr/7")
    assert unknown.exit_code == ExitCode.NOT_FOUND and "revision 'refs/pr/7' not found" in unknown.stderr


def test_only_files_the_globs_selected_are_reported_blocked(run_cli: Run, hub: LocalHub) -> None:
    files = {
        "config.json": b"{}",
        "model.safetensors": b"w" * 10,
        "pytorch_model.bin": b"p",
        "sub/args.bin": b"a",
    }
    hub.add_repo("acme/tiny", files)
    pull = [*ep(hub), "hf", "pull", "model", "acme/tiny", "--include", "*.json"]
    r = run_cli(*pull)
    # No notice, no footer: the include had left the pickles out before the safety rule looked.
    assert (
        r.exit_code == 0 and "0 blocked" in r.stderr and ".bin" not in r.stderr and "unsafe" not in r.stderr
    )
    assert json.loads(run_cli(*pull, "--json").stdout)["blocked"] == []
    more = ["--include", "sub/", "--include", "*.safetensors"]
    r = run_cli(*pull, *more)
    assert r.exit_code == 0 and "1 blocked" in r.stderr and "pytorch_model.bin" not in r.stderr
    assert "blocked sub/args.bin: pickle-based format (.bin) (use --allow-unsafe to download it)" in r.stderr
    assert [b["path"] for b in json.loads(run_cli(*pull, *more, "--json").stdout)["blocked"]] == [
        "sub/args.bin"
    ]
