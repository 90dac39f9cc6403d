"""Pull requests as discussions: create, read, list (hub-protocol §8.6), raw HTTP and official client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from engine.testing import LocalHub
from engine.testing.http import Reply, expect_json, fetch, post_json, run_official_client

# Registered by the `hub` fixture in conftest.py.
WRITE_TOKEN, READ_TOKEN = "hf_write_alice", "hf_read_bob"


def _open(hub: LocalHub, repo: str, payload: dict[str, object], token: str | None = WRITE_TOKEN) -> Reply:
    return post_json(f"{hub.url}/api/models/{repo}/discussions", payload, token)


def test_pull_request_discussion_branches_from_main_and_shares_pr_numbers(hub: LocalHub) -> None:
    head = hub.add_repo("alice/m", {"a.txt": "a"})
    pr = {"title": "Upload folder", "description": "some files", "pullRequest": True}
    assert _open(hub, "alice/m", pr, token=None).status == 401
    assert _open(hub, "alice/m", pr, token=READ_TOKEN).status == 403
    assert _open(hub, "alice/nope", pr).header("x-error-code") == "RepoNotFound"
    created = expect_json(_open(hub, "alice/m", pr))
    assert created["num"] == 1 and created["isPullRequest"] is True
    assert created["url"] == f"{hub.url}/alice/m/discussions/1"
    assert hub.head("alice/m", revision="refs/pr/1") == head

    details = expect_json(fetch("GET", f"{hub.url}/api/models/alice/m/discussions/1?diff=1"))
    assert details["title"] == "Upload folder" and details["status"] == "draft"
    assert details["author"]["name"] == "alice" and details["repo"] == {"name": "alice/m", "type": "model"}
    assert details["changes"]["base"] == "refs/heads/main" and details["filesWithConflicts"] == []
    assert details["createdAt"].endswith("Z")
    assert details["events"][0]["type"] == "comment"
    assert details["events"][0]["data"]["latest"]["raw"] == "some files"

    # A commit with create_pr=1 takes the next number, and shows up as a discussion too.
    commit = fetch(
        "POST",
        f"{hub.url}/api/models/alice/m/commit/main?create_pr=1",
        body=json.dumps({"key": "header", "value": {"summary": "second", "description": ""}}) + "\n",
        token=WRITE_TOKEN,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert expect_json(commit)["pullRequestUrl"].endswith("/discussions/2")
    second = expect_json(fetch("GET", f"{hub.url}/api/models/alice/m/discussions/2"))
    assert second["title"] == "second" and second["status"] == "open"
    assert [e["type"] for e in second["events"]] == ["commit"]
    plain = expect_json(
        _open(hub, "alice/m", {"title": "question", "description": "why?", "pullRequest": False})
    )
    assert plain["num"] == 3 and hub.head("alice/m", revision="refs/pr/3") is None

    listing = expect_json(fetch("GET", f"{hub.url}/api/models/alice/m/discussions?p=0"))
    assert listing["count"] == 3 and listing["start"] == 0
    assert [(d["num"], d["isPullRequest"]) for d in listing["discussions"]] == [
        (3, False),
        (2, True),
        (1, True),
    ]
    only_prs = expect_json(fetch("GET", f"{hub.url}/api/models/alice/m/discussions?type=pull_request"))
    assert [d["num"] for d in only_prs["discussions"]] == [2, 1]
    missing = fetch("GET", f"{hub.url}/api/models/alice/m/discussions/9")
    assert missing.status == 404
    assert fetch("GET", f"{hub.url}/api/models/alice/m/discussions/x").status in (400, 404)


UPLOAD_PR_SCRIPT = r"""
import json, os, pathlib
if KEEP_XET:
    os.environ.pop("HF_HUB_DISABLE_XET", None)  # read at import time: before the import below
from huggingface_hub import HfApi
from huggingface_hub.utils._runtime import is_xet_available
api = HfApi()
folder = pathlib.Path(os.environ["HF_HOME"]) / "upload"
(folder / "sub").mkdir(parents=True)
(folder / "notes.txt").write_text("regular text")
(folder / "sub" / "more.md").write_text("# more")
out = {"xet": is_xet_available()}
info = api.upload_folder(repo_id="alice/m", folder_path=folder, create_pr=True, commit_message="Add notes")
out["pr_revision"], out["pr_url"] = info.pr_revision, info.pr_url
out["pr_files"] = sorted(api.list_repo_files("alice/m", revision=info.pr_revision))
out["main_files"] = sorted(api.list_repo_files("alice/m"))
d = api.get_discussion_details("alice/m", info.pr_num)
out["details"] = [d.num, d.title, d.is_pull_request, d.target_branch, d.author, d.git_reference]
out["listed"] = [(x.num, x.title, x.is_pull_request, x.status) for x in api.get_repo_discussions("alice/m")]
print(json.dumps(out))
"""


def _upload_with_pr(hub: LocalHub, home: Path, *, keep_xet: bool) -> dict[str, Any]:
    hub.add_repo("alice/m", {"a.txt": "a"})
    script = f"KEEP_XET = {keep_xet}\n" + UPLOAD_PR_SCRIPT
    return cast(dict[str, Any], run_official_client(script, endpoint=hub.url, home=home, token=WRITE_TOKEN))


def test_upload_folder_create_pr_through_the_xet_pipeline(hub: LocalHub, tmp_path: Path) -> None:
    # With hf_xet usable, 2.x opens the PR as a discussion first and then commits to refs/pr/N.
    out = _upload_with_pr(hub, tmp_path / "hf", keep_xet=True)
    assert out["xet"] is True
    assert out["pr_revision"] == "refs/pr/1" and out["pr_url"] == f"{hub.url}/alice/m/discussions/1"
    assert out["pr_files"] == ["a.txt", "notes.txt", "sub/more.md"] and out["main_files"] == ["a.txt"]
    assert out["details"] == [1, "Add notes", True, "refs/heads/main", "alice", "refs/pr/1"]
    assert out["listed"] == [[1, "Add notes", True, "draft"]]
    assert hub.stats().count("discussion-create") == 1


def test_upload_folder_create_pr_without_xet(hub: LocalHub, tmp_path: Path) -> None:
    # Without hf_xet the client makes one commit with create_pr=1; it must list as a discussion.
    out = _upload_with_pr(hub, tmp_path / "hf", keep_xet=False)
    assert out["xet"] is False and out["pr_revision"] == "refs/pr/1"
    assert out["pr_files"] == ["a.txt", "notes.txt", "sub/more.md"] and out["main_files"] == ["a.txt"]
    assert out["details"] == [1, "Add notes", True, "refs/heads/main", "alice", "refs/pr/1"]
    assert out["listed"] == [[1, "Add notes", True, "open"]]
