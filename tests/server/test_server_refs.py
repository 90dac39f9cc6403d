"""Tags, the default branch, case-variant repo ids and formatted commits (raw HTTP and official client)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from engine.testing import LocalHub
from engine.testing.http import Reply, expect_json, fetch, post_json, run_official_client

# Registered by the `hub` fixture in conftest.py.
WRITE_TOKEN, READ_TOKEN = "hf_write_alice", "hf_read_bob"


def _tag(hub: LocalHub, rev: str, payload: dict[str, object], token: str | None = WRITE_TOKEN) -> Reply:
    return post_json(f"{hub.url}/api/models/alice/m/tag/{rev}", payload, token)


def _commit_file(hub: LocalHub, path: str, text: str) -> None:
    lines = [
        {"key": "header", "value": {"summary": f"write {path}"}},
        {"key": "file", "value": {"path": path, "content": text, "encoding": "utf-8"}},
    ]
    reply = fetch(
        "POST",
        f"{hub.url}/api/models/alice/m/commit/main",
        body="".join(json.dumps(line) + "\n" for line in lines),
        token=WRITE_TOKEN,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert reply.status == 200, reply


def test_tag_is_a_frozen_revision(hub: LocalHub) -> None:
    v1 = hub.add_repo("alice/m", {"a.txt": "one", "sub/b.txt": "b"})
    assert _tag(hub, "main", {"tag": "v1"}, token=READ_TOKEN).status == 403
    assert expect_json(_tag(hub, "main", {"tag": "v1", "message": "first"})) == {}
    assert _tag(hub, "main", {"tag": "v1"}).status == 409
    assert _tag(hub, "nope", {"tag": "v2"}).header("x-error-code") == "RevisionNotFound"
    assert _tag(hub, "main", {"tag": "refs/heads/x"}).status == 400
    _commit_file(hub, "a.txt", "two")
    assert expect_json(_tag(hub, "v1", {"tag": "release/1"})) == {}  # a tag of a tag, with a slash

    assert fetch("GET", f"{hub.url}/alice/m/resolve/v1/a.txt").body == b"one"
    assert fetch("GET", f"{hub.url}/alice/m/resolve/main/a.txt").body == b"two"
    assert fetch("GET", f"{hub.url}/alice/m/resolve/refs%2Ftags%2Fv1/a.txt").body == b"one"
    assert fetch("GET", f"{hub.url}/alice/m/resolve/release%2F1/sub/b.txt").body == b"b"
    assert expect_json(fetch("GET", f"{hub.url}/api/models/alice/m/revision/v1"))["sha"] == v1
    assert expect_json(fetch("GET", f"{hub.url}/api/models/alice/m/revision/{v1}"))["sha"] == v1
    tree = expect_json(fetch("GET", f"{hub.url}/api/models/alice/m/tree/v1?recursive=true"))
    assert [e["path"] for e in tree] == ["a.txt", "sub", "sub/b.txt"]
    commits = expect_json(fetch("GET", f"{hub.url}/api/models/alice/m/commits/v1"))
    assert commits[0]["id"] == v1

    refs = expect_json(fetch("GET", f"{hub.url}/api/models/alice/m/refs"))
    assert refs["tags"] == [
        {"name": "release/1", "ref": "refs/tags/release/1", "targetCommit": v1},
        {"name": "v1", "ref": "refs/tags/v1", "targetCommit": v1},
    ]
    assert [b["name"] for b in refs["branches"]] == ["main"]
    # A tag cannot be committed to, and deleting it makes the revision unknown again.
    to_tag = fetch(
        "POST",
        f"{hub.url}/api/models/alice/m/commit/v1",
        body=json.dumps({"key": "header", "value": {"summary": "x"}}) + "\n",
        token=WRITE_TOKEN,
    )
    assert to_tag.status == 404
    assert expect_json(fetch("DELETE", f"{hub.url}/api/models/alice/m/tag/v1", token=WRITE_TOKEN)) == {}
    gone = fetch("GET", f"{hub.url}/alice/m/resolve/v1/a.txt")
    assert gone.status == 404 and gone.header("x-error-code") == "RevisionNotFound"
    again = fetch("DELETE", f"{hub.url}/api/models/alice/m/tag/v1", token=WRITE_TOKEN)
    assert again.status == 404 and again.header("x-error-code") == "RevisionNotFound"
    assert fetch("GET", f"{hub.url}/alice/m/resolve/release%2F1/a.txt").body == b"one"


def test_deleting_the_default_branch_is_refused_without_revision_not_found(hub: LocalHub) -> None:
    hub.add_repo("alice/m", {"a.txt": "a"})
    reply = fetch("DELETE", f"{hub.url}/api/models/alice/m/branch/main", token=WRITE_TOKEN)
    assert reply.status == 403 and reply.header("x-error-code") is None
    assert "default branch" in (reply.header("x-error-message") or "")
    missing = fetch("DELETE", f"{hub.url}/api/models/alice/m/branch/dev", token=WRITE_TOKEN)
    assert missing.status == 404 and missing.header("x-error-code") == "RevisionNotFound"


def test_case_variant_ids_redirect_to_the_canonical_spelling(hub: LocalHub) -> None:
    hub.add_repo("acme/tiny", {"config.json": "{}"})
    hub.add_repo("acme/Data", {"train.csv": "a\n"}, repo_type="dataset")
    cases = {
        "/api/models/ACME/Tiny": "/api/models/acme/tiny",
        "/api/models/acme/TINY/revision/main?expand=sha": "/api/models/acme/tiny/revision/main?expand=sha",
        "/api/models/Acme/tiny/tree/main?recursive=true": "/api/models/acme/tiny/tree/main?recursive=true",
        "/api/models/ACME/tiny/discussions": "/api/models/acme/tiny/discussions",
        "/ACME/Tiny/resolve/main/config.json?download=true": "/acme/tiny/resolve/main/config.json?download=true",
        "/datasets/acme/data/resolve/main/train.csv": "/datasets/acme/Data/resolve/main/train.csv",
        "/api/datasets/ACME/DATA": "/api/datasets/acme/Data",
    }
    # The LFS routes too: a 307 keeps the POST and its body.
    lfs = {
        "/ACME/Tiny.git/info/lfs/objects/batch": "/acme/tiny.git/info/lfs/objects/batch",
        "/acme/TINY.git/info/lfs/objects/verify?x=1": "/acme/tiny.git/info/lfs/objects/verify?x=1",
        "/datasets/acme/data.git/info/lfs/objects/batch": "/datasets/acme/Data.git/info/lfs/objects/batch",
    }
    for method, table in (("GET", cases), ("POST", lfs)):
        for path, location in table.items():
            if method == "GET":
                reply = fetch("GET", hub.url + path)
            else:
                reply = post_json(hub.url + path, {"operation": "upload", "objects": []}, WRITE_TOKEN)
            assert (reply.status, reply.header("location")) == (307, location), path
    assert post_json(f"{hub.url}/acme/tiny.git/info/lfs/objects/batch", {}, WRITE_TOKEN).status == 400
    assert fetch("GET", f"{hub.url}/api/models/acme/tiny").status == 200
    assert fetch("GET", f"{hub.url}/api/models/acme/other").header("x-error-code") == "RepoNotFound"
    assert fetch("GET", f"{hub.url}/api/datasets/ACME/Tiny").status == 401  # a model: no such dataset


REFS_SCRIPT = r"""
import json
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError
api = HfApi()
out = {}
api.create_tag("alice/m", tag="v1", tag_message="first release")
api.create_tag("alice/m", tag="v1", exist_ok=True)
api.upload_file(path_or_fileobj=b"two", path_in_repo="a.txt", repo_id="alice/m")
out["tags"] = [(t.name, t.ref, t.target_commit) for t in api.list_repo_refs("alice/m").tags]
out["tag_sha"] = api.model_info("alice/m", revision="v1").sha
out["tag_tree"] = [f.path for f in api.list_repo_tree("alice/m", revision="v1")]
out["tag_file"] = open(hf_hub_download("alice/m", "a.txt", revision="v1")).read()
out["main_file"] = open(hf_hub_download("alice/m", "a.txt")).read()
api.delete_tag("alice/m", tag="v1")
out["after_delete"] = [t.name for t in api.list_repo_refs("alice/m").tags]
try:
    api.delete_branch("alice/m", branch="main")
except RevisionNotFoundError as exc:
    out["delete_main"] = ["RevisionNotFoundError", str(exc)]
except HfHubHTTPError as exc:
    out["delete_main"] = [type(exc).__name__, exc.response.status_code]
print(json.dumps(out))
"""


def test_official_client_tags(hub: LocalHub, tmp_path: Path) -> None:
    v1 = hub.add_repo("alice/m", {"a.txt": "one"})
    out = cast(
        dict[str, Any],
        run_official_client(REFS_SCRIPT, endpoint=hub.url, home=tmp_path / "hf", token=WRITE_TOKEN),
    )
    assert out["tags"] == [["v1", "refs/tags/v1", v1]] and out["tag_sha"] == v1
    assert out["tag_tree"] == ["a.txt"] and out["tag_file"] == "one" and out["main_file"] == "two"
    assert out["after_delete"] == []
    assert out["delete_main"] == ["HfHubHTTPError", 403]


CASE_SCRIPT = r"""
import json
from huggingface_hub import HfApi, hf_hub_download
api = HfApi()
out = {}
out["info"] = api.model_info("ACME/Tiny").id
out["file"] = open(hf_hub_download("Acme/TINY", "config.json")).read()
out["tree"] = [f.path for f in api.list_repo_tree("ACME/tiny", revision="main")]
print(json.dumps(out))
"""


def test_official_client_follows_case_variant_ids(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo("acme/tiny", {"config.json": '{"a": 1}'})
    out = cast(dict[str, Any], run_official_client(CASE_SCRIPT, endpoint=hub.url, home=tmp_path / "hf"))
    assert out == {"info": "acme/tiny", "file": '{"a": 1}', "tree": ["config.json"]}


COMMITS_SCRIPT = r"""
import json
from huggingface_hub import HfApi
api = HfApi()
commits = api.list_repo_commits("alice/m", formatted=True)
out = {"formatted": [(c.title, c.formatted_title, c.formatted_message) for c in commits]}
out["plain"] = [c.formatted_title for c in api.list_repo_commits("alice/m")]
print(json.dumps(out))
"""


def test_official_client_formatted_commits(hub: LocalHub, tmp_path: Path) -> None:
    hub.add_repo("alice/m", {"a.txt": "one"})
    lines = [{"key": "header", "value": {"summary": "Fix <b> & co", "description": "line 1\nline 2"}}]
    reply = fetch(
        "POST",
        f"{hub.url}/api/models/alice/m/commit/main",
        body="".join(json.dumps(line) + "\n" for line in lines),
        token=WRITE_TOKEN,
    )
    assert reply.status == 200, reply
    out = cast(
        dict[str, Any],
        run_official_client(COMMITS_SCRIPT, endpoint=hub.url, home=tmp_path / "hf", token=WRITE_TOKEN),
    )
    assert out["formatted"][0] == ["Fix <b> & co", "Fix &lt;b&gt; &amp; co", "line 1\nline 2"]
    assert all(f[1] is not None for f in out["formatted"]) and set(out["plain"]) == {None}
