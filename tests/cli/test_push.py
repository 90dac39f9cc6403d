"""`batuta hf push` through the real entry point, against a LocalHub on 127.0.0.1."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import cli.push  # noqa: F401  (registers `hf push` until cli/app.py imports it)
from cli.errors import ExitCode
from engine.testing.hub import LocalHub

Run = Callable[..., object]
WRITER, READER = "hf_cli_writer_token_push_0000000000", "hf_cli_reader_token_push_0000000000"
KiB = 1024


@pytest.fixture
def hub() -> Iterator[LocalHub]:
    with LocalHub.in_thread(multipart_threshold_bytes=200 * KiB, multipart_chunk_bytes=64 * KiB) as h:
        h.add_token(WRITER, user="acme", role="write")
        h.add_token(READER, user="acme", role="read")
        yield h


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "weights").mkdir(parents=True)
    (root / "config.json").write_text('{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}')
    (root / "weights" / "model.safetensors").write_bytes(os.urandom(300 * KiB))
    (root / "notes.txt").write_text("hello\n")
    past = time.time() - 60
    for p in root.rglob("*"):
        os.utime(p, (past, past))
    return root


def push(run_cli: Run, hub: LocalHub, folder: Path, *extra: str, token: str | None = WRITER) -> object:
    auth = ["--token", token] if token else []
    return run_cli(
        "--endpoint", hub.url, *auth, "hf", "push", "model", str(folder), "--repo", "acme/cli", *extra
    )


def out(r: object) -> str:
    return str(r.stdout)  # type: ignore[attr-defined]


def err(r: object) -> str:
    return str(r.stderr)  # type: ignore[attr-defined]


def code(r: object) -> int:
    return int(r.exit_code)  # type: ignore[attr-defined]


def test_push_then_repush_reports_up_to_date(run_cli: Run, hub: LocalHub, folder: Path) -> None:
    first = push(run_cli, hub, folder, "--message", "first upload")
    assert code(first) == 0, first
    assert "created model repo acme/cli" in err(first) and "generated a model card" in err(first)
    assert "pushed 4 new" in err(first) and "/acme/cli/commit/" not in err(first)  # once, below
    # stdout is the commit's URL alone, as `hf upload` prints it: `url=$(batuta hf push ...)`.
    assert out(first).strip() == f"{hub.url}/acme/cli/commit/{hub.head('acme/cli')}"
    assert (hub.repo_dir("acme/cli") / "weights" / "model.safetensors").read_bytes() == (
        folder / "weights" / "model.safetensors"
    ).read_bytes()
    hub.reset()
    again = push(run_cli, hub, folder)
    assert code(again) == 0 and "acme/cli@main is up to date (4 files unchanged); no commit made" in err(
        again
    )
    assert out(again) == ""
    assert hub.stats().writes == 0


def test_dry_run_json_lists_actions_and_sends_nothing(run_cli: Run, hub: LocalHub, folder: Path) -> None:
    r = push(run_cli, hub, folder, "--dry-run", "--json", "--no-card")
    assert code(r) == 0, r
    doc = json.loads(out(r))
    assert doc["dry_run"] is True and doc["repo"] == "acme/cli" and doc["counts"]["add"] == 3
    assert {f["path"]: f["lfs"] for f in doc["files"]} == {
        "config.json": False,
        "notes.txt": False,
        "weights/model.safetensors": True,
    }
    assert hub.stats().writes == 0 and hub.head("acme/cli") is None
    table = push(run_cli, hub, folder, "--dry-run")
    assert "dry run: would upload 4 files" in out(table) and "README.md" in out(table)


def test_json_summary_of_a_real_push(run_cli: Run, hub: LocalHub, folder: Path) -> None:
    r = push(run_cli, hub, folder, "--json", "--license", "mit")
    doc = json.loads(out(r))
    assert doc["up_to_date"] is False and len(doc["commits"]) == 1 and doc["bytes_uploaded"] == 300 * KiB
    assert doc["head"] == hub.head("acme/cli")
    assert "license: mit" in (hub.repo_dir("acme/cli") / "README.md").read_text()


def test_secrets_exit_with_masked_findings_and_exclude_is_the_way_out(
    run_cli: Run, hub: LocalHub, folder: Path
) -> None:
    key = "AKIA" + "Q3EGRBM2XKJ7ZP4N"
    (folder / "deploy.sh").write_text(f"#!/bin/sh\nexport AWS_ACCESS_KEY_ID={key}\n")
    r = push(run_cli, hub, folder)
    assert code(r) == ExitCode.SECRETS_FOUND
    assert "deploy.sh:2" in err(r) and key not in err(r) + out(r)
    assert "error: refusing to push: 1 possible secret found" in err(r)
    assert hub.stats().total == 0
    ok = push(run_cli, hub, folder, "--exclude", "deploy.sh")
    assert code(ok) == 0 and not (hub.repo_dir("acme/cli") / "deploy.sh").exists()


def test_bad_input_exits_with_usage_and_sends_nothing(run_cli: Run, hub: LocalHub, tmp_path: Path) -> None:
    missing = push(run_cli, hub, tmp_path / "nope")
    assert code(missing) == ExitCode.USAGE and "does not exist" in err(missing)
    (tmp_path / "empty").mkdir()
    empty = push(run_cli, hub, tmp_path / "empty")
    assert code(empty) == ExitCode.USAGE and "nothing to push" in err(empty)
    bad_id = run_cli("--endpoint", hub.url, "hf", "push", "model", str(tmp_path), "--repo", "no/such/id")
    assert code(bad_id) == ExitCode.USAGE and "invalid repo id" in err(bad_id)
    bad_type = run_cli("--endpoint", hub.url, "hf", "push", "widget", str(tmp_path), "--repo", "a/b")
    assert code(bad_type) == ExitCode.USAGE
    assert hub.stats().writes == 0


def test_auth_errors_map_to_their_exit_codes(run_cli: Run, hub: LocalHub, folder: Path) -> None:
    anon = push(run_cli, hub, folder, token=None)
    assert code(anon) == ExitCode.AUTH_REQUIRED and err(anon).startswith("error: ")
    ro = push(run_cli, hub, folder, token=READER)
    assert code(ro) == ExitCode.FORBIDDEN and "error: forbidden" in err(ro)


def test_503_and_429_during_upload_are_retried(run_cli: Run, hub: LocalHub, folder: Path) -> None:
    # Retry-After: 0 keeps the CLI's default backoff out of the test's run time.
    hub.fail(status=503, times=2, path_contains="/upload/", retry_after="0")
    hub.fail(status=429, times=1, path_contains="/preupload/", retry_after="0")
    r = push(run_cli, hub, folder)
    assert code(r) == 0, r
    assert hub.stats().faults_fired.get("503", 0) == 2 and hub.stats().faults_fired.get("429", 0) == 1


def test_a_retry_after_wait_is_said_and_a_long_one_is_not_sat_out(
    run_cli: Run, hub: LocalHub, folder: Path
) -> None:
    hub.fail(status=429, times=1, path_contains="/commit/", retry_after="1")
    r = push(run_cli, hub, folder)
    assert code(r) == 0 and "waiting 1 s for 127.0.0.1" in err(r) and "429" in err(r), r
    (folder / "notes.txt").write_text("changed\n")
    hub.fail(status=429, times=1, path_contains="/commit/", retry_after="3600")
    r = push(run_cli, hub, folder)
    assert code(r) == ExitCode.RATE_LIMITED and "it asks to wait 1 h 0 min" in err(r), r


def test_a_file_edited_while_its_upload_waits_is_named_and_nothing_is_committed(
    run_cli: Run, hub: LocalHub, folder: Path
) -> None:
    weights = folder / "weights" / "model.safetensors"
    hub.fail(status=429, times=1, path_contains="/upload/", retry_after="2")

    def edit_during_the_wait() -> None:
        deadline = time.monotonic() + 30
        while "429" not in hub.stats().faults_fired and time.monotonic() < deadline:
            time.sleep(0.01)  # hashed and announced; the first upload attempt was just refused
        weights.write_bytes(os.urandom(300 * KiB))

    edit = threading.Thread(target=edit_during_the_wait)
    edit.start()
    try:
        r = push(run_cli, hub, folder)
    finally:
        edit.join()
    assert code(r) == ExitCode.INTEGRITY, r
    assert err(r).splitlines()[-1] == (
        "error: weights/model.safetensors changed while it was being pushed; nothing was committed: push again"
    )
    assert not hub.repo_dir("acme/cli").exists() or not (hub.repo_dir("acme/cli") / "weights").exists()
    assert code(push(run_cli, hub, folder)) == 0  # and pushing again works


def test_revision_and_create_pr(run_cli: Run, hub: LocalHub, folder: Path) -> None:
    assert code(push(run_cli, hub, folder)) == 0
    (folder / "notes.txt").write_text("changed\n")
    pr = push(run_cli, hub, folder, "--create-pr")
    assert code(pr) == 0, pr
    assert "changed files to acme/cli@refs/pr/1," in err(pr) and "acme/cli@main" not in err(pr)
    assert "opened pull request #1 into main" in err(pr) and out(pr).strip().endswith(
        "/acme/cli/discussions/1"
    )
    (folder / "notes.txt").write_text("changed again\n")
    doc = json.loads(out(push(run_cli, hub, folder, "--create-pr", "--json")))
    assert (doc["revision"], doc["pr_revision"], doc["pr_number"]) == ("main", "refs/pr/2", 2)
    assert doc["pr_url"].endswith("/acme/cli/discussions/2")
    assert doc["head"] == hub.head("acme/cli", revision="refs/pr/2")
    (folder / "notes.txt").write_text("changed\n")
    dev = push(run_cli, hub, folder, "--revision", "dev")
    assert code(dev) == 0 and "acme/cli@dev" in err(dev)
    assert (hub.repo_dir("acme/cli", revision="dev") / "notes.txt").read_text() == "changed\n"
    assert (hub.repo_dir("acme/cli") / "notes.txt").read_text() == "hello\n"


def test_a_readme_on_the_hub_is_not_replaced_by_a_generated_card(
    run_cli: Run, hub: LocalHub, folder: Path
) -> None:
    readme = b"---\nlicense: mit\n---\n\n# cli\n\nHand-written.\n"
    hub.add_repo("acme/cli", {"README.md": readme})
    r = push(run_cli, hub, folder, "--json")
    assert code(r) == 0, r
    doc = json.loads(out(r))
    assert doc["card_generated"] is False and doc["card_kept"] is True
    assert (hub.repo_dir("acme/cli") / "README.md").read_bytes() == readme
    human = push(run_cli, hub, folder, "--delete")
    assert "is up to date (4 files unchanged)" in err(human) and "generated a model card" not in err(human)
    assert (hub.repo_dir("acme/cli") / "README.md").read_bytes() == readme


def repo_files(hub: LocalHub) -> dict[str, bytes]:
    root = hub.repo_dir("acme/cli")
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_one_file_is_pushed_under_its_name_or_its_path_in_repo(
    run_cli: Run, hub: LocalHub, folder: Path
) -> None:
    # As `hf upload REPO FILE [PATH_IN_REPO]`: no folder needed, no card generated.
    single = folder / "weights" / "model.safetensors"
    assert code(push(run_cli, hub, single)) == 0
    assert code(push(run_cli, hub, single, "--path-in-repo", "ckpt/step-100.safetensors")) == 0
    assert code(push(run_cli, hub, folder / "notes.txt", "--path-in-repo", "docs/")) == 0
    files = repo_files(hub)
    assert files["model.safetensors"] == files["ckpt/step-100.safetensors"] == single.read_bytes()
    assert files["docs/notes.txt"] == b"hello\n" and "README.md" not in files
    again = push(run_cli, hub, single, "--json")
    assert code(again) == 0 and json.loads(out(again))["files"][0]["action"] == "unchanged"


def test_a_folder_goes_under_path_in_repo_and_delete_stays_inside_it(
    run_cli: Run, hub: LocalHub, folder: Path
) -> None:
    assert code(push(run_cli, hub, folder, "--no-card")) == 0
    assert code(push(run_cli, hub, folder, "--path-in-repo", "/v2/", "--commit-description", "why")) == 0
    (folder / "notes.txt").unlink()
    r = push(run_cli, hub, folder, "--path-in-repo", "v2", "--delete", "--json")
    assert code(r) == 0, err(r)
    deleted = [f["path"] for f in json.loads(out(r))["files"] if f["action"] == "delete"]
    assert deleted == ["v2/notes.txt"]  # the root's notes.txt is outside v2/: kept
    files = repo_files(hub)
    assert "notes.txt" in files and "v2/config.json" in files and "v2/notes.txt" not in files
    assert "v2/README.md" not in files  # a folder pushed into a subfolder gets no card


@pytest.mark.parametrize(
    "target,extra,message",
    [
        ("file", ["--delete"], "--delete needs a folder"),
        ("file", ["--include", "*.txt"], "PATH is one file"),
        ("folder", ["--path-in-repo", "a/../b"], "is not a path a repo can hold"),
        ("folder", ["--path-in-repo", "a\\b"], "is not a path a repo can hold"),
        ("folder", ["--path-in-repo", "x/.git/hooks"], "is not a path a repo can hold"),
        ("folder", ["--path-in-repo", "a\nb"], "'a\\nb' is not a path a repo can hold"),
        ("file", ["--path-in-repo", "bad\udcff.txt"], "is not a path a repo can hold"),
    ],
)
def test_bad_single_file_and_path_in_repo_input_is_a_usage_error(
    run_cli: Run, hub: LocalHub, folder: Path, target: str, extra: list[str], message: str
) -> None:
    path = folder / "notes.txt" if target == "file" else folder
    r = push(run_cli, hub, path, *extra)
    assert code(r) == ExitCode.USAGE and message in err(r) and hub.stats().total == 0
